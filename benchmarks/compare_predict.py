#!/usr/bin/env python3
"""Inference benchmark: `adapter-studio predict` against the Python `adapters` library.

Real English text (the licence texts every Debian system ships in /usr/share/common-licenses
and /usr/share/doc/*/copyright), cut into lines of realistic, spread lengths (log-normal around
20 words, 3 to 150). The setups are made once with the library on the demo model and saved in
AdapterHub folders (freshly initialised weights compute exactly as trained ones): the bare
model with a head, one seq_bn adapter, and a 3-way fusion. For each setup both sides predict
every line in one process each, one after the other:

- Python: the library's model, batches of --batch-size in file order with dynamic padding
  (the tokenizer's padding=True), torch.no_grad, softmax on the CPU — the way its users would.
- Rust: target/release/adapter-studio predict --jsonl --batch-size N (length-sorted windows),
  stdout to /dev/null.

Each child's peak RSS comes from os.wait4(); throughput is lines / wall time of the whole
process minus the model-loading time the child reports (Python) or the time to a first
prediction on one line (Rust), so both count inference only. Prints a Markdown table and the
overhead of an adapter and of the fusion over the bare model.

Usage (build first: cargo build --release):
  .venv/bin/python benchmarks/compare_predict.py [--lines 2000] [--batch-size 32]
      [--json-out results.json]
  .venv/bin/python benchmarks/compare_predict.py --memory 5000,100000 [--setup adapter]
      # our peak RSS by file length, beside the peak of the file's longest batch alone
"""

import argparse
import glob
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUST_BIN = ROOT / "target" / "release" / "adapter-studio"
DEMO_MODEL = ROOT / ".venv" / "demo-model"
MAX_LENGTH = 128


def real_words():
    files = sorted(glob.glob("/usr/share/common-licenses/*")) + sorted(
        glob.glob("/usr/share/doc/*/copyright"))
    words = []
    for f in files:
        try:
            words += open(f, encoding="utf-8", errors="ignore").read().split()
        except OSError:
            pass
        if len(words) > 400_000:
            break
    if not words:
        sys.exit("no text found under /usr/share/common-licenses or /usr/share/doc")
    return words


def write_lines(path, n, seed=7):
    rng = random.Random(seed)
    words = real_words()
    at = 0
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            k = min(150, max(3, round(math.exp(rng.gauss(math.log(20), 0.75)))))
            f.write(" ".join(words[(at + j) % len(words)] for j in range(k)) + "\n")
            at += k


def run_child(cmd, stdout=subprocess.DEVNULL):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{err}")
    return wall, usage.ru_maxrss / 1024, err


# ---- the Python side (a child process per setup) -------------------------------------------

def python_child(a):
    import torch
    from adapters import AutoAdapterModel
    from adapters.composition import Fuse
    from transformers import AutoTokenizer

    t0 = time.perf_counter()
    torch.set_grad_enabled(False)
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoAdapterModel.from_pretrained(a.model)
    names = []
    for d in a.adapter:
        names.append(model.load_adapter(d))
    if a.fusion:
        model.load_adapter_fusion(a.fusion)
        model.set_active_adapters(Fuse(*names))
    elif names:
        model.set_active_adapters(names[0])
    model.load_head(a.head)
    model.eval()
    lines = [l.rstrip("\n") for l in open(a.input, encoding="utf-8") if l.strip()]
    loaded = time.perf_counter() - t0
    t1 = time.perf_counter()
    n = 0
    for i in range(0, len(lines), a.batch_size):
        enc = tok(lines[i:i + a.batch_size], padding=True, truncation=True,
                  max_length=MAX_LENGTH, return_tensors="pt")
        logits = model(**enc).logits
        probs = torch.softmax(logits, -1)
        n += probs.shape[0]
    print(json.dumps({"lines": n, "load_secs": loaded, "predict_secs": time.perf_counter() - t1}))


def make_setups(work):
    """Three AdapterHub setups on the demo model, written by the library itself."""
    code = f"""
import torch
from adapters import AutoAdapterModel, SeqBnConfig
from adapters.composition import Fuse
torch.manual_seed(0)
m = AutoAdapterModel.from_pretrained({str(DEMO_MODEL)!r})
for n in ["a", "b", "c"]:
    m.add_adapter(n, config=SeqBnConfig())
    m.save_adapter({str(work)!r} + "/" + n, n)
m.add_adapter_fusion(Fuse("a", "b", "c"))
m.save_adapter_fusion({str(work)!r} + "/fusion", "a,b,c")
m.add_classification_head("cls", num_labels=4)
m.save_head({str(work)!r} + "/head", "cls")
"""
    subprocess.run([sys.executable, "-c", code], check=True)
    w = Path(work)
    return {
        "bare model + head": ([], None),
        "1 adapter (seq_bn)": ([w / "a"], None),
        "3-way fusion": ([w / "a", w / "b", w / "c"], w / "fusion"),
    }


def rust_cmd(adapters, fusion, head, input_path, batch_size, model=DEMO_MODEL):
    cmd = [str(RUST_BIN), "predict", "--device", "cpu", "--quiet", "--jsonl",
           "--batch-size", str(batch_size), "--model", str(model), "--head", str(head)]
    for d in adapters:
        cmd += ["--adapter", str(d)]
    if fusion:
        cmd += ["--fusion", str(fusion)]
    return cmd + ["--input", str(input_path)]


def python_cmd(adapters, fusion, head, input_path, batch_size):
    cmd = [sys.executable, __file__, "--child", "--model", str(DEMO_MODEL), "--head", str(head),
           "--input", str(input_path), "--batch-size", str(batch_size)]
    for d in adapters:
        cmd += ["--adapter", str(d)]
    if fusion:
        cmd += ["--fusion", str(fusion)]
    return cmd


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lines", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--json-out")
    p.add_argument("--memory", help="comma-separated line counts: our peak RSS per file length")
    p.add_argument("--setup", choices=["bare", "adapter", "fusion"], default="fusion",
                   help="the setup --memory runs")
    p.add_argument("--tiny", action="store_true",
                   help="--memory on the tests' tiny BERT and its adapters (fast enough for "
                        "100,000 lines on a small machine; the same code path)")
    # Child mode (the Python side of one setup).
    p.add_argument("--child", action="store_true")
    p.add_argument("--model")
    p.add_argument("--adapter", action="append", default=[])
    p.add_argument("--fusion")
    p.add_argument("--head")
    p.add_argument("--input")
    a = p.parse_args()
    if a.child:
        return python_child(a)
    if not RUST_BIN.exists():
        sys.exit("build first: cargo build --release")
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        setups = make_setups(work)
        if a.memory:
            # Memory is bounded by the batch if a whole file peaks no higher than its longest
            # batch does alone (same batch size, the longest lines by words).
            key = {"bare": "bare model + head", "adapter": "1 adapter (seq_bn)",
                   "fusion": "3-way fusion"}[a.setup]
            adapters, fusion = setups[key]
            model, head = DEMO_MODEL, work / "head"
            if a.tiny:
                model, fx = ROOT / "tests/fixtures/bert_tiny", ROOT / "tests/fixtures/bert_tiny_adapters"
                head = fx / "head_cls"
                adapters = {"bare": [], "adapter": [fx / "a"],
                            "fusion": [fx / "a", fx / "b", fx / "c"]}[a.setup]
                fusion = fx / "fusion_abc" if a.setup == "fusion" else None
            print(f"{key}, {model.name}, batch size {a.batch_size}\n")
            print("| lines | wall s | lines/s | peak RSS MiB | longest batch alone MiB |")
            print("|---|---|---|---|---|")
            for n in [int(x) for x in a.memory.split(",")]:
                path = work / f"{n}.txt"
                write_lines(path, n)
                lines = path.read_text(encoding="utf-8").splitlines()
                longest = work / f"{n}-longest.txt"
                longest.write_text("\n".join(sorted(lines, key=lambda l: -len(l.split()))
                                             [:a.batch_size]) + "\n", encoding="utf-8")
                _, batch_rss, _ = run_child(rust_cmd(adapters, fusion, head, longest, a.batch_size,
                                                     model))
                wall, rss, _ = run_child(rust_cmd(adapters, fusion, head, path, a.batch_size, model))
                print(f"| {n} | {wall:.1f} | {n / wall:.1f} | {rss:.0f} | {batch_rss:.0f} |",
                      flush=True)
            return
        path = work / "lines.txt"
        write_lines(path, a.lines)
        one = work / "one.txt"
        write_lines(one, 1)
        rows = []
        for name, (adapters, fusion) in setups.items():
            # Ours: the whole process, minus a one-line run's time (loading and start-up).
            start_secs, _, _ = run_child(rust_cmd(adapters, fusion, work / "head", one, a.batch_size))
            wall, rss, _ = run_child(rust_cmd(adapters, fusion, work / "head", path, a.batch_size))
            ours = a.lines / max(wall - start_secs, 1e-9)
            out = tempfile.TemporaryFile()
            _, py_rss, _ = run_child(python_cmd(adapters, fusion, work / "head", path, a.batch_size), stdout=out)
            out.seek(0)
            res = json.loads(out.read().decode().strip().splitlines()[-1])
            theirs = res["lines"] / res["predict_secs"]
            rows.append({"setup": name, "rust_lines_per_sec": ours, "python_lines_per_sec": theirs,
                         "rust_peak_rss_mib": rss, "python_peak_rss_mib": py_rss,
                         "throughput_ratio": ours / theirs, "memory_ratio": rss / py_rss})
            print(f"{name}: ours {ours:.1f} lines/s {rss:.0f} MiB, library {theirs:.1f} lines/s "
                  f"{py_rss:.0f} MiB", file=sys.stderr, flush=True)
    print(f"{a.lines} lines of real text, batch size {a.batch_size}, max {MAX_LENGTH} tokens, CPU\n")
    print("| setup | ours lines/s | library lines/s | ratio | ours peak MiB | library peak MiB | ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['setup']} | {r['rust_lines_per_sec']:.1f} | {r['python_lines_per_sec']:.1f} | "
              f"{r['throughput_ratio']:.2f}x | {r['rust_peak_rss_mib']:.0f} | "
              f"{r['python_peak_rss_mib']:.0f} | {r['memory_ratio']:.2f}x |")
    bare = rows[0]
    for r in rows[1:]:
        for side in ("rust", "python"):
            slow = bare[f"{side}_lines_per_sec"] / r[f"{side}_lines_per_sec"] - 1
            print(f"overhead of {r['setup']} over the bare model ({side}): {slow * 100:+.1f}%")
    if a.json_out:
        Path(a.json_out).write_text(json.dumps({"lines": a.lines, "batch_size": a.batch_size,
                                                "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
