#!/usr/bin/env python3
"""Peak memory of loading a large Parquet dataset, against the same rows as CSV.

Writes N rows (default 1,000,000) of real English (the licence texts under
/usr/share/common-licenses and /usr/share/doc/*/copyright, as in compare_predict.py): a
`text` column (log-normal lengths around 20 words), a ClassLabel `label` (4 names), and an
unused `document` column five times longer, which a column-by-column reader never decodes.
Then `adapter-studio datasets FILE --task classification` loads each (the same load `train`
does: every example typed, labels counted) and its peak RSS and time are printed.

  .venv/bin/python benchmarks/dataset_memory.py [--rows 1000000]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_predict import RUST_BIN, run_child, write_lines  # noqa: E402


def write(work, rows):
    """The files, written in a child process: a forked child's peak RSS counts the pages of
    the process it was forked from, so the measuring parent must stay small."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import ClassLabel, Features, Value

    lines_path = work / "lines.txt"
    write_lines(lines_path, rows)
    texts = lines_path.read_text(encoding="utf-8").splitlines()
    names = ["apt", "doc", "lib", "net"]
    labels = [len(t) % 4 for t in texts]
    documents = [" ".join([t] * 5) for t in texts]
    features = Features({"text": Value("string"), "label": ClassLabel(names=names),
                         "document": Value("string")})
    table = pa.table({"text": texts, "label": pa.array(labels, pa.int64()),
                      "document": documents})
    table = table.replace_schema_metadata(features.arrow_schema.metadata)
    parquet = work / "train.parquet"
    pq.write_table(table, str(parquet), row_group_size=100_000)
    csv = work / "train.csv"
    import csv as csvmod
    with open(csv, "w", encoding="utf-8", newline="") as f:
        w = csvmod.writer(f)
        w.writerow(["text", "label", "document"])
        for t, l, d in zip(texts, labels, documents):
            w.writerow([t, names[l], d])
    print(f"{rows} rows; Parquet {parquet.stat().st_size / 2**20:.0f} MiB, "
          f"CSV {csv.stat().st_size / 2**20:.0f} MiB\n")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--write", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.write:
        return write(Path(a.write), a.rows)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        subprocess.run([sys.executable, __file__, "--write", str(work), "--rows", str(a.rows)],
                       check=True)
        parquet, csv = work / "train.parquet", work / "train.csv"
        print("| file | load s | peak RSS MiB |\n|---|---|---|")
        for path in (parquet, csv):
            wall, rss, _ = run_child([str(RUST_BIN), "datasets", str(path), "--task",
                                      "classification", "--json"])
            print(f"| {path.name} | {wall:.1f} | {rss:.0f} |", flush=True)


if __name__ == "__main__":
    main()
