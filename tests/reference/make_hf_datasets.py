#!/usr/bin/env python3
"""Hugging Face dataset files for tests/hf_datasets.rs, written by `datasets` and `pyarrow`.

  .venv/bin/python tests/reference/make_hf_datasets.py OUT_DIR

Writes under OUT_DIR:
  pairs/{train,validation}.{parquet,csv}   a GLUE-style pair task (sentence1, sentence2,
                                           ClassLabel `label`, idx); the CSV holds the same
                                           rows with the label names
  pairs/train.feather                      the same train split as an Arrow IPC *file*
  saved/                                   DatasetDict.save_to_disk (train, validation)
  saved_train/                             Dataset.save_to_disk (one split, two shards)
  hub/datasets--fake--glue/…               a Hub cache: two configs (mrpc, rte), Parquet shards
  hf_datasets_cache/…                      the `datasets` cache, made by load_dataset("parquet")
  tagging/train.parquet                    tokens + Sequence(ClassLabel) ner_tags
  broken/…                                 a truncated Parquet file, a non-Arrow .arrow file,
                                           a struct text column, a numeric text column
"""
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.feather as feather  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value  # noqa: E402

NAMES = ["entailment", "not_entailment"]
SUBJECTS = ["The package", "This library", "The daemon", "A small tool", "The compiler",
            "The manual page", "This program", "The server"]
VERBS = ["installs", "provides", "documents", "compresses", "reads", "formats", "starts",
         "checks"]
OBJECTS = ["shared files", "the configuration", "fonts for the terminal", "a web interface",
           "archive headers", "locale data", "kernel modules", "spelling dictionaries"]


def pair_rows(n, offset):
    rows = {"sentence1": [], "sentence2": [], "label": [], "idx": []}
    for i in range(offset, offset + n):
        s, v, o = SUBJECTS[i % 8], VERBS[(i * 3) % 8], OBJECTS[(i * 5) % 8]
        same = i % 3 != 0
        other = OBJECTS[(i * 5 + 1) % 8]
        rows["sentence1"].append(f"{s} {v} {o}.")
        rows["sentence2"].append(f"It {v} {o if same else other}.")
        rows["label"].append(0 if same else 1)
        rows["idx"].append(i)
    return rows


PAIR_FEATURES = Features({"sentence1": Value("string"), "sentence2": Value("string"),
                          "label": ClassLabel(names=NAMES), "idx": Value("int32")})


def write_pairs(out):
    d = out / "pairs"
    d.mkdir(parents=True)
    splits = {"train": Dataset.from_dict(pair_rows(48, 0), features=PAIR_FEATURES),
              "validation": Dataset.from_dict(pair_rows(16, 100), features=PAIR_FEATURES)}
    for name, ds in splits.items():
        ds.to_parquet(str(d / f"{name}.parquet"))
        rows = ds.to_dict()
        with open(d / f"{name}.csv", "w", encoding="utf-8") as f:
            f.write("sentence1,sentence2,label,idx\n")
            for s1, s2, label, idx in zip(rows["sentence1"], rows["sentence2"], rows["label"],
                                          rows["idx"]):
                f.write(f"{s1},{s2},{NAMES[label]},{idx}\n")
    feather.write_feather(splits["train"].data.table, str(d / "train.feather"),
                          compression="uncompressed")
    return splits


def write_hub(out, splits):
    snap = out / "hub" / "datasets--fake--glue" / "snapshots" / "0123456789abcdef"
    for config in ["mrpc", "rte"]:
        (snap / config).mkdir(parents=True)
        for name, ds in splits.items():
            ds.to_parquet(str(snap / config / f"{name}-00000-of-00001.parquet"))
    (snap / "README.md").write_text("---\npretty_name: fake glue\n---\n")
    refs = out / "hub" / "datasets--fake--glue" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text("0123456789abcdef")


def write_datasets_cache(out):
    files = {"train": str(out / "pairs" / "train.parquet"),
             "validation": str(out / "pairs" / "validation.parquet")}
    datasets.load_dataset("parquet", data_files=files, cache_dir=str(out / "hf_datasets_cache"))


def write_tagging(out):
    d = out / "tagging"
    d.mkdir(parents=True)
    tags = ["O", "B-PER", "I-PER", "B-LOC"]
    features = Features({"tokens": Sequence(Value("string")),
                         "ner_tags": Sequence(ClassLabel(names=tags))})
    words = [["Ada", "Lovelace", "lived", "in", "London", "."],
             ["Alan", "visited", "Paris", "."],
             ["The", "tool", "runs", "everywhere", "."]]
    ids = [[1, 2, 0, 0, 3, 0], [1, 0, 3, 0], [0, 0, 0, 0, 0]]
    Dataset.from_dict({"tokens": words * 4, "ner_tags": ids * 4},
                      features=features).to_parquet(str(d / "train.parquet"))


def write_broken(out, splits):
    d = out / "broken"
    d.mkdir(parents=True)
    good = (out / "pairs" / "train.parquet").read_bytes()
    (d / "truncated.parquet").write_bytes(good[: len(good) // 2])
    (d / "not_arrow.arrow").write_bytes(b"this is not an Arrow stream\n" * 4)
    table = pa.table({"text": pa.array([{"title": "a", "body": "b"}, {"title": "c", "body": "d"}]),
                      "label": pa.array(["x", "y"])})
    pq.write_table(table, str(d / "struct_text.parquet"))
    pq.write_table(pa.table({"text": pa.array([1, 2]), "label": pa.array(["x", "y"])}),
                   str(d / "number_text.parquet"))


def main():
    out = Path(sys.argv[1])
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    splits = write_pairs(out)
    DatasetDict(splits).save_to_disk(str(out / "saved"))
    splits["train"].save_to_disk(str(out / "saved_train"), num_shards=2)
    write_hub(out, splits)
    write_datasets_cache(out)
    write_tagging(out)
    write_broken(out, splits)


if __name__ == "__main__":
    main()
