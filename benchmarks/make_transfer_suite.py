#!/usr/bin/env python3
"""Write a real-text transfer suite (CSV `text,label`) from the Debian package metadata on this machine.

Each example is one Debian binary package: its short description followed by its long
description (the `Description-en` of the apt Translation-en index, paragraph separators
` .` removed, list bullets dropped, whitespace normalised), cut to the first 60 words. The
package name, section and tags are never part of the text; they only give the labels.

Clean-up before any task is built:
  - transitional / dummy packages, metapackages, `oldlibs` and debug-symbol packages are dropped;
  - texts under 8 words are dropped;
  - duplicates are dropped by normalised text (first 60 words) and by normalised long
    description (so -dev/-doc/-dbg variants and versioned libraries of different source
    packages collapse to one), keeping the alphabetically first package;
  - every task takes at most ONE binary package per `Source:` and every source package is
    used by at most one task (targets are filled first), so no two tasks, and no two
    examples of a task, come from the same source package.

Tasks (balanced classes; the role says what the transfer experiments use them for):

  source  section8     Debian Section, 8 classes: doc devel libs net perl python utils x11
  source  role         Debtags `role::` facet, 6 classes
  source  works-with   Debtags `works-with::` facet, 6 classes
  target  section4     Debian Section, 4 classes not in section8: games graphics science sound
  target  use4         Debtags `use::` facet, 4 classes: converting editing monitor viewing
  target  section4b    Debian Section, 4 more classes: editors mail math web

A Debtags example is kept only when exactly one of its task's classes is among its tags of
that facet. Source tasks: {train, validation, test}; targets: 25 training examples per class,
60 validation and 60 test per class.

Data: `apt-cache dumpavail` (the candidate version of every package) joined on
`Description-md5` with the Translation-en indexes in /var/lib/apt/lists. Docker images of
Debian turn Translation downloads off; `--apt-update` (root, network) fetches them once with

  printf '#clear Acquire::Languages;\\nAcquire::Languages { "en"; };\\n' > /tmp/apt-lang.conf
  apt-get -c /tmp/apt-lang.conf update

(a later plain `apt-get update` deletes them again). Only the standard library is used; the
same seed and the same apt data write byte-identical files (suite.json records a digest of
the apt data).

Usage:  python3 benchmarks/make_transfer_suite.py [--out benchmarks/transfer-data] [--seed 0]
"""

import argparse
import collections
import csv
import glob
import hashlib
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

LISTS = "/var/lib/apt/lists"
APT_HELPER = "/usr/lib/apt/apt-helper"
MAX_WORDS = 60
MIN_WORDS = 8

# name, role, kind, key (Section name or Debtags facet), classes, (train, validation, test) per class
TASKS = [
    ("section4", "target", "section", None, ["games", "graphics", "science", "sound"], (25, 60, 60)),
    ("use4", "target", "debtags", "use", ["converting", "editing", "monitor", "viewing"], (25, 60, 60)),
    ("section4b", "target", "section", None, ["editors", "mail", "math", "web"], (25, 60, 60)),
    ("works-with", "source", "debtags", "works-with",
     ["text", "audio", "image", "file", "software:source", "db"], (110, 25, 0)),
    ("role", "source", "debtags", "role",
     ["program", "devel-lib", "shared-lib", "documentation", "app-data", "plugin"], (200, 30, 0)),
    ("section8", "source", "section", None,
     ["doc", "devel", "libs", "net", "perl", "python", "utils", "x11"], (180, 25, 0)),
]

DESCRIBE = {
    "section": "Debian archive Section of the binary package (component prefix removed)",
    "debtags": "Debtags `{facet}::` tag of the binary package (exactly one of the task's classes)",
}

DROP_RE = re.compile(
    r"\btransitional\b|\bdummy\b|\bmetapackage\b|\bmeta-package\b|\bdebug(ging)? symbols\b",
    re.IGNORECASE,
)
DROP_SECTIONS = {"oldlibs", "metapackages", "tasks", "debug"}
DROP_ROLES = {"dummy", "metapackage", "debug-symbols"}


def sh(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def records(text):
    """Deb822 stanzas as dicts (continuation lines kept, joined with newlines)."""
    for block in re.split(r"\n\s*\n", text):
        rec, key = {}, None
        for line in block.split("\n"):
            if not line:
                continue
            if line[0] in " \t":
                if key is not None:
                    rec[key] += "\n" + line
            else:
                key, _, value = line.partition(":")
                rec[key] = value.strip()
        if rec:
            yield rec


def translation_files():
    return sorted(glob.glob(os.path.join(LISTS, "*_i18n_Translation-en*")))


def apt_update():
    conf = "/tmp/apt-lang.conf"
    Path(conf).write_text('#clear Acquire::Languages;\nAcquire::Languages { "en"; };\n')
    subprocess.run(["apt-get", "-c", conf, "update"], check=True, stdout=sys.stderr)


def load_apt():
    packages = sh(["apt-cache", "dumpavail"])
    digest = hashlib.sha256(packages.encode())
    long_desc = {}
    for path in translation_files():
        text = sh([APT_HELPER, "cat-file", path])
        digest.update(text.encode())
        for r in records(text):
            if "Description-md5" in r and "Description-en" in r:
                long_desc[r["Description-md5"]] = r["Description-en"]
    return list(records(packages)), long_desc, digest.hexdigest()


def description_text(full):
    """'short\\n long lines' -> (short, long) as plain, whitespace-normalised text."""
    short, _, body = full.partition("\n")
    lines = []
    for line in body.split("\n"):
        line = line.strip()
        if line == ".":
            continue
        line = re.sub(r"^([*+o-]|\d+[.)])\s+", "", line)  # list bullets
        lines.append(line)
    norm = lambda s: re.sub(r"\s+", " ", s).strip()
    return norm(short), norm(" ".join(lines))


def norm_key(text):
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def tags_of(rec):
    return {t.strip() for t in re.split(r",\s*", rec.get("Tag", "").replace("\n", " ")) if t.strip()}


def build_pool(pkgs, long_desc):
    """One entry per kept binary package; dropped-reason counts for the summary."""
    dropped = collections.Counter()
    pool = []
    seen_text, seen_long = set(), set()
    for rec in sorted(pkgs, key=lambda r: r["Package"]):
        name = rec["Package"]
        section = rec.get("Section", "").split("/")[-1]
        tags = tags_of(rec)
        full = long_desc.get(rec.get("Description-md5", ""))
        if full is None:
            full = rec.get("Description", "")
            if "\n" not in full:
                dropped["no long description"] += 1
                continue
        short, body = description_text(full)
        if (
            DROP_RE.search(short) or DROP_RE.search(body[:200]) or section in DROP_SECTIONS
            or {t.split("::", 1)[1] for t in tags if t.startswith("role::")} & DROP_ROLES
            or name.endswith(("-dbg", "-dbgsym"))
        ):
            dropped["transitional/dummy/meta/debug"] += 1
            continue
        words = f"{short}. {body}".split() if not short.endswith((".", "!", "?", ":")) \
            else f"{short} {body}".split()
        if len(words) < MIN_WORDS:
            dropped["too short"] += 1
            continue
        text = " ".join(words[:MAX_WORDS])
        k_text, k_long = norm_key(text), norm_key(" ".join(body.split()[:40]))
        if k_text in seen_text or (len(k_long.split()) >= 15 and k_long in seen_long):
            dropped["duplicate text"] += 1
            continue
        seen_text.add(k_text)
        seen_long.add(k_long)
        pool.append({
            "package": name,
            "source": rec.get("Source", name).split()[0],
            "section": section,
            "tags": tags,
            "text": text,
        })
    return pool, dropped


def label_of(entry, kind, facet, classes):
    if kind == "section":
        return entry["section"] if entry["section"] in classes else None
    values = {t.split("::", 1)[1] for t in entry["tags"] if t.startswith(facet + "::")}
    hit = values & set(classes)
    return hit.pop() if len(hit) == 1 else None


def build_task(pool_by_source, used_sources, seed, name, kind, facet, classes, counts):
    rng = random.Random(f"{seed}/{name}")
    # source package -> class -> candidate binary packages
    cands = collections.defaultdict(lambda: collections.defaultdict(list))
    for src in sorted(pool_by_source):
        if src in used_sources:
            continue
        for e in pool_by_source[src]:
            lab = label_of(e, kind, facet, classes)
            if lab is not None:
                cands[src][lab].append(e)
    want = sum(counts)
    by_class = {}
    # Rarest class first, so that a source package offering two classes goes to the scarcer.
    avail = {c: sum(1 for s in cands if c in cands[s]) for c in classes}
    for c in sorted(classes, key=lambda c: (avail[c], c)):
        srcs = sorted(s for s in cands if c in cands[s] and s not in used_sources)
        rng.shuffle(srcs)
        picked = []
        for s in srcs[:want]:
            picked.append(rng.choice(cands[s][c]))
            used_sources.add(s)
        by_class[c] = picked
    n_train, n_val, n_test = counts
    have = min(len(v) for v in by_class.values())
    if have < n_train + n_val:
        short = {c: len(v) for c, v in by_class.items()}
        sys.exit(f"make_transfer_suite: task {name}: too few examples per class: {short}")
    if have < want:
        n_test = have - n_train - n_val
        print(f"[suite] {name}: test cut to {n_test} per class", file=sys.stderr)
    splits = {"train": [], "validation": [], "test": []}
    for c in classes:
        rows = [(e["text"], c, e["package"]) for e in by_class[c]]
        splits["train"] += rows[:n_train]
        splits["validation"] += rows[n_train:n_train + n_val]
        splits["test"] += rows[n_train + n_val:n_train + n_val + n_test]
    for rows in splits.values():
        rows.sort(key=lambda r: r[2])  # canonical order, then a seeded shuffle
        rng.shuffle(rows)
    return splits, {c: avail[c] for c in classes}


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\r\n")  # RFC 4180
        w.writerow(["text", "label"])
        for text, label, _ in rows:
            w.writerow([text, label])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="benchmarks/transfer-data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--apt-update", action="store_true",
                   help="fetch the Translation-en indexes first (root, network)")
    a = p.parse_args()

    if a.apt_update:
        apt_update()
    if not translation_files():
        sys.exit(
            "make_transfer_suite: no Translation-en index in /var/lib/apt/lists (Docker "
            "images turn them off), so only short descriptions are available.\n"
            "Run it once with --apt-update (root, network), or see this script's docstring."
        )
    pkgs, long_desc, digest = load_apt()
    pool, dropped = build_pool(pkgs, long_desc)
    pool_by_source = collections.defaultdict(list)
    for e in pool:
        pool_by_source[e["source"]].append(e)

    out = Path(a.out)
    used_sources = set()
    suite = {
        "generator": "benchmarks/make_transfer_suite.py",
        "seed": a.seed,
        "apt_data_sha256": digest,
        "packages_in_apt": len(pkgs),
        "packages_kept": len(pool),
        "source_packages_kept": len(pool_by_source),
        "dropped": dict(sorted(dropped.items())),
        "text": f"short + long Debian description, first {MAX_WORDS} words; no package name, "
                "section or tags",
        "tasks": [],
    }
    print(f"[suite] apt: {len(pkgs)} packages, kept {len(pool)} "
          f"({len(pool_by_source)} source packages); dropped {dict(dropped)}")
    for name, role, kind, facet, classes, counts in TASKS:
        splits, avail = build_task(pool_by_source, used_sources, a.seed, name, kind, facet,
                                   classes, counts)
        (out / name).mkdir(parents=True, exist_ok=True)
        sizes = {}
        for split, rows in splits.items():
            if rows:
                write_csv(out / name / f"{split}.csv", rows)
                sizes[split] = len(rows)
            elif (out / name / f"{split}.csv").exists():
                (out / name / f"{split}.csv").unlink()
        per_class = {s: dict(sorted(collections.Counter(r[1] for r in rows).items()))
                     for s, rows in splits.items() if rows}
        suite["tasks"].append({
            "name": name,
            "role": role,
            "classes": sorted(classes),
            "labelled_by": DESCRIBE[kind].format(facet=facet),
            "counts": sizes,
            "per_class": per_class,
            "available_source_packages_per_class": avail,
            "files": {s: f"{name}/{s}.csv" for s in sizes},
        })
        print(f"[suite] {role:6} {name:11} {len(classes)} classes "
              f"{' '.join(f'{s}={n}' for s, n in sizes.items())}  ({', '.join(sorted(classes))})")
    (out / "suite.json").write_text(json.dumps(suite, indent=2) + "\n", encoding="utf-8")
    print(f"[suite] wrote {out}/<task>/{{train,validation,test}}.csv and {out}/suite.json")


if __name__ == "__main__":
    main()
