#!/usr/bin/env python3
"""Write the synthetic training-speed benchmark datasets (CSV `text,label`, 2 labels).

  fixed.csv   every text has 140-220 words, so it is always truncated at 128 tokens: fixed
              and dynamic padding give the same [batch, 128] shapes.
  spread.csv  word counts drawn from a log-normal (median 20 words, clipped to 3..150), the
              spread of review / NLI corpora: most batches are short, a few hit the 128 cap.

Texts are English-like sentences built from the vocabulary below; the label (negative or
positive) decides which opinion words are mixed in, so the task is learnable. Only the
standard library and fixed seeds are used: the same arguments write byte-identical files.

Usage:  python3 benchmarks/make_bench_data.py --out DIR [--rows 4000] [--seed 7]
"""

import argparse
import csv
import math
import random
from pathlib import Path

LABELS = ("negative", "positive")

DETERMINERS = "the a this that every one another our their my your some".split()
NOUNS = (
    "film story actor director camera script scene plot ending soundtrack hotel room staff "
    "breakfast restaurant waiter menu dish dessert price phone battery screen keyboard laptop "
    "charger book author chapter character teacher course lecture exam city museum park "
    "train station ticket flight airport journey garden kitchen coffee bakery concert band "
    "singer album game team match season player coach window service delivery package"
).split()
VERBS = (
    "shows offers makes brings keeps gives leaves takes finds builds changes follows opens "
    "turns holds meets carries explains describes reaches improves delivers"
).split()
ADJECTIVES = (
    "new old small large quiet busy modern simple early late long short bright dark warm "
    "cold local famous second final usual strange careful clever heavy light"
).split()
ADVERBS = "quickly slowly clearly easily rarely often almost really quite truly simply".split()
CONNECTIVES = "and but while because although so then yet".split()
OPINION = {
    "negative": (
        "boring awful disappointing terrible dull broken rude noisy overpriced confusing "
        "weak bland annoying slow dirty forgettable"
    ).split(),
    "positive": (
        "wonderful excellent delightful brilliant charming friendly clean fast reliable "
        "moving lovely impressive generous fresh memorable superb"
    ).split(),
}


def clause(rng, label):
    """One short clause; about a third of them carry an opinion word for the label."""
    words = [rng.choice(DETERMINERS), rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(VERBS)]
    words += [rng.choice(DETERMINERS), rng.choice(NOUNS)]
    if rng.random() < 0.35:
        words += ["that", "felt", rng.choice(ADVERBS), rng.choice(OPINION[label])]
    elif rng.random() < 0.5:
        words.append(rng.choice(ADVERBS))
    return words


def text_of(rng, label, n_words):
    """Sentences of clauses until exactly n_words words (cut mid-clause at the end)."""
    words = []
    while len(words) < n_words:
        sentence = clause(rng, label)
        while rng.random() < 0.4:
            sentence += [rng.choice(CONNECTIVES)] + clause(rng, label)
        sentence[0] = sentence[0].capitalize()
        sentence[-1] += "."
        words += sentence
    words = words[:n_words]
    if not words[-1].endswith("."):
        words[-1] += "."
    return " ".join(words)


def fixed_length(rng):
    return rng.randint(140, 220)


def spread_length(rng):
    return min(150, max(3, round(math.exp(rng.gauss(math.log(20), 0.75)))))


DATASETS = {"fixed": fixed_length, "spread": spread_length}


def write_dataset(path, rows, seed, length_of):
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["text", "label"])
        for _ in range(rows):
            label = rng.choice(LABELS)
            out.writerow([text_of(rng, label, length_of(rng)), label])


def write_datasets(out_dir, rows=4000, seed=7):
    """Write fixed.csv and spread.csv into out_dir; returns {name: path}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for i, (name, length_of) in enumerate(DATASETS.items()):
        paths[name] = out_dir / f"{name}.csv"
        write_dataset(paths[name], rows, seed * 1000 + i, length_of)
    return paths


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder to write fixed.csv and spread.csv into")
    p.add_argument("--rows", type=int, default=4000, help="examples per dataset (default 4000)")
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args()
    for name, path in write_datasets(a.out, a.rows, a.seed).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
