#!/usr/bin/env python3
"""ONNX Runtime against `adapter-studio predict` and the Python `adapters` library.

The same real text and setups as benchmarks/compare_predict.py (licence texts cut into lines of
realistic lengths; the demo model bare, with one seq_bn adapter, and with a 3-way fusion, all
written by the library). Each setup is exported with `adapter-studio export --format onnx`;
then, one process each, one after the other:

- ONNX Runtime (CPU provider, default threads): tokenizer.json from the export (padding to the
  batch's longest line, truncation at 128), batches of --batch-size in file order, softmax in
  numpy — what a user of the export writes (its README's snippet); and the same with the lines
  sorted by token count first (as `predict` batches), which separates the runtime's speed from
  the padding's;
- `predict` (target/release/adapter-studio, length-sorted batches);
- the Python library (as compare_predict.py runs it).

Throughput counts inference only (each side's own loading is subtracted: ORT's session
creation and the library's model loading are timed in the child; ours by a one-line run).
Peak RSS from os.wait4(). Prints a Markdown table with ORT's ratios to both.

Usage (build first: cargo build --release):
  .venv/bin/python benchmarks/compare_onnx.py [--lines 2000] [--batch-size 32] [--json-out F]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_predict as cp  # noqa: E402


def ort_child(a):
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    t0 = time.perf_counter()
    d = Path(a.onnx)
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    session = ort.InferenceSession(str(d / "model.onnx"), providers=["CPUExecutionProvider"])
    pad = int(session.get_modelmeta().custom_metadata_map.get("pad_id", "0"))
    tok.enable_padding(pad_id=pad)
    tok.enable_truncation(max_length=cp.MAX_LENGTH)
    names = [i.name for i in session.get_inputs()]
    lines = [l.rstrip("\n") for l in open(a.input, encoding="utf-8") if l.strip()]
    loaded = time.perf_counter() - t0
    t1 = time.perf_counter()
    if a.sorted:
        lines.sort(key=lambda l: len(tok.encode(l).ids))
    n = 0
    for i in range(0, len(lines), a.batch_size):
        enc = tok.encode_batch(lines[i:i + a.batch_size])
        fields = {"input_ids": [e.ids for e in enc], "attention_mask": [e.attention_mask for e in enc],
                  "token_type_ids": [e.type_ids for e in enc]}
        logits = session.run(["logits"], {k: np.array(fields[k], dtype=np.int64) for k in names})[0]
        e = np.exp(logits - logits.max(-1, keepdims=True))
        probs = e / e.sum(-1, keepdims=True)
        n += probs.shape[0]
    print(json.dumps({"lines": n, "load_secs": loaded, "predict_secs": time.perf_counter() - t1}))


def child_rate(cmd):
    out = tempfile.TemporaryFile()
    _, rss, _ = cp.run_child(cmd, stdout=out)
    out.seek(0)
    res = json.loads(out.read().decode().strip().splitlines()[-1])
    return res["lines"] / res["predict_secs"], rss


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lines", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--json-out")
    p.add_argument("--child", action="store_true")
    p.add_argument("--onnx")
    p.add_argument("--input")
    p.add_argument("--sorted", action="store_true")
    a = p.parse_args()
    if a.child:
        return ort_child(a)
    if not cp.RUST_BIN.exists():
        sys.exit("build first: cargo build --release")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        setups = cp.make_setups(work)
        path = work / "lines.txt"
        cp.write_lines(path, a.lines)
        one = work / "one.txt"
        cp.write_lines(one, 1)
        head = work / "head"
        for name, (adapters, fusion) in setups.items():
            onnx = work / f"onnx-{len(rows)}"
            cmd = [str(cp.RUST_BIN), "export", "--format", "onnx", "--model", str(cp.DEMO_MODEL),
                   "--head", str(head), "--out", str(onnx)]
            for d in adapters:
                cmd += ["--adapter", str(d)]
            if fusion:
                cmd += ["--fusion", str(fusion)]
            subprocess.run(cmd, check=True, capture_output=True)
            ort = [sys.executable, __file__, "--child", "--onnx", str(onnx), "--input", str(path),
                   "--batch-size", str(a.batch_size)]
            ort_rate, ort_rss = child_rate(ort)
            sorted_rate, _ = child_rate(ort + ["--sorted"])
            start_secs, _, _ = cp.run_child(cp.rust_cmd(adapters, fusion, head, one, a.batch_size))
            wall, rss, _ = cp.run_child(cp.rust_cmd(adapters, fusion, head, path, a.batch_size))
            ours = a.lines / max(wall - start_secs, 1e-9)
            lib_rate, lib_rss = child_rate(cp.python_cmd(adapters, fusion, head, path, a.batch_size))
            rows.append({"setup": name, "ort_lines_per_sec": ort_rate,
                         "ort_sorted_lines_per_sec": sorted_rate, "rust_lines_per_sec": ours,
                         "python_lines_per_sec": lib_rate, "ort_peak_rss_mib": ort_rss,
                         "rust_peak_rss_mib": rss, "python_peak_rss_mib": lib_rss})
            print(f"{name}: ORT {ort_rate:.1f} (sorted {sorted_rate:.1f}), ours {ours:.1f}, "
                  f"library {lib_rate:.1f} lines/s",
                  file=sys.stderr, flush=True)
    print(f"{a.lines} lines of real text, batch size {a.batch_size}, max {cp.MAX_LENGTH} tokens, "
          "CPU\n")
    print("| setup | ONNX Runtime lines/s (file order / sorted) | predict lines/s | "
          "library lines/s | ORT ÷ library | sorted ORT ÷ predict | "
          "peak MiB ORT / predict / library |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['setup']} | {r['ort_lines_per_sec']:.1f} / {r['ort_sorted_lines_per_sec']:.1f} "
              f"| {r['rust_lines_per_sec']:.1f} | {r['python_lines_per_sec']:.1f} | "
              f"{r['ort_lines_per_sec'] / r['python_lines_per_sec']:.2f}x | "
              f"{r['ort_sorted_lines_per_sec'] / r['rust_lines_per_sec']:.2f}x | "
              f"{r['ort_peak_rss_mib']:.0f} / {r['rust_peak_rss_mib']:.0f} / "
              f"{r['python_peak_rss_mib']:.0f} |")
    if a.json_out:
        Path(a.json_out).write_text(json.dumps({"lines": a.lines, "batch_size": a.batch_size,
                                                "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
