#!/usr/bin/env python3
"""Datasets larger than memory: peak RSS against rows for `train` and `eval`, and the time
to preview the first rows of a 2 GB CSV.

Data: real English lines from the package descriptions in /var/lib/dpkg/status (the indented
description lines, without conffile lists and `.` separators), one to three consecutive lines
a row, labelled with the package's Debian section folded to 4 classes (a `ClassLabel`), plus
an unused `document` column three times longer (which a column reader never decodes). Files
are written by a child process (a forked child's peak RSS counts its parent's pages).

For each row count (default 100k, 1M, 10M) it runs, one at a time, each child's peak RSS
from os.wait4():

  train --model demo --train F.parquet --max-steps 20 --batch-size 32 --max-length 32
        --validation-split 0 --device cpu
  eval  --model demo --adapter RUN/adapter --head RUN/head --data F.parquet --max-length 32
        (only up to --eval-rows rows, default 100k: evaluation runs the model on every row)

and `datasets F.csv` on a CSV of about 2 GB for the preview (the app's preview calls the same
`read_table` with a row limit). ADAPTER_STUDIO_STREAM_ABOVE_MB (in the environment) picks the
in-memory path (a large value) or the streamed one (0; by default files over 64 MiB stream).

  .venv/bin/python benchmarks/large_dataset.py [--rows 100000,1000000,10000000]
      [--eval-rows 100000] [--csv-gb 2] [--bin target/release/adapter-studio]
      [--work DIR] [--json-out results.json]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = {"libs": 0, "libdevel": 0, "admin": 1, "utils": 1, "net": 2, "web": 2}
NAMES = ["libraries", "system", "network", "other"]


def description_lines():
    """(line, class) pairs from dpkg's status file, in file order."""
    out, section = [], None
    with open("/var/lib/dpkg/status", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("Section:"):
                section = line.split(":", 1)[1].strip().split("/")[-1]
            elif line.startswith("Package:"):
                section = None
            elif line.startswith(" ") and not line.startswith((" /", " .")):
                text = line.strip()
                if len(text) > 8:
                    out.append((text, SECTIONS.get(section, 3)))
    if not out:
        sys.exit("no package descriptions in /var/lib/dpkg/status")
    return out


def rows_of(lines, start, n):
    """Rows start..start+n: one to three consecutive description lines each."""
    m = len(lines)
    texts, labels = [], []
    for i in range(start, start + n):
        k = 1 + (i * 7) % 3
        at = (i * 13) % m
        texts.append(" ".join(lines[(at + j) % m][0] for j in range(k)))
        labels.append(lines[at][1])
    return texts, labels


def write_parquet(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import ClassLabel, Features, Value

    lines = description_lines()
    features = Features({"text": Value("string"), "label": ClassLabel(names=NAMES),
                         "document": Value("string")})
    chunk = 100_000
    writer = None
    for start in range(0, rows, chunk):
        texts, labels = rows_of(lines, start, min(chunk, rows - start))
        table = pa.table({"text": texts, "label": pa.array(labels, pa.int64()),
                          "document": [" ".join([t] * 3) for t in texts]})
        table = table.replace_schema_metadata(features.arrow_schema.metadata)
        if writer is None:
            writer = pq.ParquetWriter(str(path), table.schema)
        writer.write_table(table, row_group_size=chunk)
    writer.close()


def write_csv(path, gigabytes):
    import csv

    lines = description_lines()
    limit = int(gigabytes * 2**30)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label", "document"])
        start = 0
        while f.tell() < limit:
            texts, labels = rows_of(lines, start, 100_000)
            for t, l in zip(texts, labels):
                w.writerow([t, NAMES[l], " ".join([t] * 3)])
            start += 100_000


def run_child(cmd, stdout=subprocess.DEVNULL):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{err[-3000:]}")
    return wall, usage.ru_maxrss / 1024


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rows", default="100000,1000000,10000000")
    p.add_argument("--eval-rows", type=int, default=100_000)
    p.add_argument("--csv-gb", type=float, default=2.0)
    p.add_argument("--bin", default=str(ROOT / "target" / "release" / "adapter-studio"))
    p.add_argument("--work", help="folder for the files (default: a temporary one)")
    p.add_argument("--json-out")
    p.add_argument("--write-parquet", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--write-csv", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.write_parquet:
        return write_parquet(Path(a.write_parquet[0]), int(a.write_parquet[1]))
    if a.write_csv:
        return write_csv(Path(a.write_csv[0]), float(a.write_csv[1]))
    if not Path(a.bin).exists():
        sys.exit(f"build first: {a.bin} is missing (cargo build --release)")
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="large-dataset-"))
    work.mkdir(parents=True, exist_ok=True)
    results = {"train": [], "eval": [], "preview": None}
    try:
        print("| rows | Parquet MiB | train 20 steps: s | peak RSS MiB | eval: s | peak RSS MiB |")
        print("|---:|---:|---:|---:|---:|---:|")
        for rows in [int(r) for r in a.rows.split(",")]:
            data = work / f"rows-{rows}.parquet"
            if not data.exists():
                subprocess.run([sys.executable, __file__, "--write-parquet", str(data),
                                str(rows)], check=True)
            run = work / f"run-{rows}"
            shutil.rmtree(run, ignore_errors=True)
            wall, rss = run_child([a.bin, "train", "--model", "demo", "--train", str(data),
                                   "--max-steps", "20", "--batch-size", "32",
                                   "--max-length", "32", "--validation-split", "0",
                                   "--device", "cpu", "--out", str(run), "--json"])
            size = data.stat().st_size / 2**20
            results["train"].append({"rows": rows, "parquet_mib": size, "secs": wall,
                                     "peak_rss_mib": rss})
            ev = ("", "")
            if rows <= a.eval_rows:
                ewall, erss = run_child([a.bin, "eval", "--model", "demo", "--adapter",
                                         str(run / "adapter"), "--head", str(run / "head"),
                                         "--data", str(data), "--max-length", "32",
                                         "--device", "cpu", "--json"])
                results["eval"].append({"rows": rows, "secs": ewall, "peak_rss_mib": erss})
                ev = (f"{ewall:.0f}", f"{erss:.0f}")
            print(f"| {rows:,} | {size:.0f} | {wall:.0f} | {rss:.0f} | {ev[0]} | {ev[1]} |",
                  flush=True)
        csv = work / "big.csv"
        if not csv.exists():
            subprocess.run([sys.executable, __file__, "--write-csv", str(csv), str(a.csv_gb)],
                           check=True)
        wall, rss = run_child([a.bin, "datasets", str(csv)])
        size = csv.stat().st_size / 2**30
        results["preview"] = {"csv_gib": size, "secs": wall, "peak_rss_mib": rss}
        print(f"\npreview of {size:.2f} GiB CSV (20 rows): {wall:.2f} s, peak {rss:.0f} MiB")
    finally:
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
