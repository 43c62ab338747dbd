#!/usr/bin/env python3
"""Pruned fusions (AdapterDrop): accuracy and speed against how much was dropped.

Two parts, both with `adapter-studio prune` (target/release), which measures the fusion before
and after on the same data in one process (the fastest of --repeats timed evaluations):

- speed (default): an 8-way fusion on the demo model, 8 seq_bn adapters written by the Python
  library (freshly initialised adapters compute exactly as trained ones, so the speed is the
  trained setup's), on --lines lines of real text (licence texts, as compare_predict.py; a
  label column of the head's label names, for the evaluation). Dropping the fusion from the
  lowest k layers (k = 0…5) and keeping 8, 4 or 2 adapters. The paper's setting: 8 adapters,
  the lowest layers dropped.
- accuracy (--suite WORK): the trained fusions of benchmarks/fusion_transfer.py's work folder
  (real-text targets of Debian package descriptions), pruned at thresholds and lowest layers,
  measured on each target's test file; with --retrain-steps N also retrained briefly (N steps
  on the target's train.csv from the pruned weights) before measuring.

Writes a Markdown table, --json-out, and --figure (accuracy change and speed-up by setting).

Usage (build first: cargo build --release):
  .venv/bin/python benchmarks/prune_fusion.py [--lines 500] [--json-out F] [--figure F.png]
  .venv/bin/python benchmarks/prune_fusion.py --suite benchmarks/transfer-work \
      --data benchmarks/transfer-data [--targets section4 use4] [--retrain-steps 0 50]
"""

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_predict as cp  # noqa: E402

LABELS = ["l0", "l1", "l2", "l3"]


def make_fusion(work, n):
    code = f"""
import torch
from adapters import AutoAdapterModel, SeqBnConfig
from adapters.composition import Fuse
torch.manual_seed(0)
m = AutoAdapterModel.from_pretrained({str(cp.DEMO_MODEL)!r})
names = [f"t{{i}}" for i in range({n})]
for n in names:
    m.add_adapter(n, config=SeqBnConfig())
    m.save_adapter({str(work)!r} + "/" + n, n)
m.add_adapter_fusion(Fuse(*names))
m.save_adapter_fusion({str(work)!r} + "/fusion", ",".join(names))
m.add_classification_head("cls", num_labels=4, id2label={dict(enumerate(LABELS))!r})
m.save_head({str(work)!r} + "/head", "cls")
"""
    subprocess.run([sys.executable, "-c", code], check=True)
    return [work / f"t{i}" for i in range(n)], work / "fusion", work / "head"


def prune(model, adapters, fusion, head, data, out, extra, repeats):
    cmd = [str(cp.RUST_BIN), "prune", "--model", str(model), "--device", "cpu",
           "--fusion", str(fusion), "--head", str(head), "--data", str(data),
           "--repeats", str(repeats), "--max-length", str(cp.MAX_LENGTH), "--json", "--force",
           "--out", str(out), *map(str, extra)]
    for d in adapters:
        cmd += ["--adapter", str(d)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0 and "no fusion to retrain" in p.stderr:
        return None
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def thresholds_keeping(report, counts):
    """Thresholds that keep `counts` adapters, from the per-adapter peaks of a first report."""
    peaks = sorted((max(row[j] for row in report["weights"]) for j in
                    range(len(report["adapters"]))), reverse=True)
    out = {}
    for k in counts:
        out[k] = None if k >= len(peaks) else (peaks[k - 1] + peaks[k]) / 2
    return out


def speed_part(a):
    rows = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        adapters, fusion, head = make_fusion(work, 8)
        text = work / "lines.txt"
        cp.write_lines(text, a.lines)
        data = work / "data.csv"
        with open(data, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            for i, line in enumerate(text.read_text(encoding="utf-8").splitlines()):
                w.writerow([line, LABELS[i % 4]])
        first = prune(cp.DEMO_MODEL, adapters, fusion, head, data, work / "p0",
                      ["--threshold", "0"], a.repeats)
        keep = thresholds_keeping(first, [8, 4, 2])
        for k, t in keep.items():
            for layers in range(0, 6):
                extra = ["--drop-layers", layers]
                if t is not None:
                    extra += ["--threshold", f"{t:.6f}"]
                elif layers == 0:
                    extra = ["--threshold", "0"]
                r = prune(cp.DEMO_MODEL, adapters, fusion, head, data, work / "p", extra,
                          a.repeats)
                rows.append({"adapters": len(r["kept"]), "dropped_layers": layers,
                             "before_per_sec": r["before"]["examples_per_second"],
                             "after_per_sec": r["after"]["examples_per_second"],
                             "speedup": r["after"]["examples_per_second"] /
                             r["before"]["examples_per_second"]})
                print(f"keep {k}, drop {layers} layers: {rows[-1]['speedup']:.2f}x",
                      file=sys.stderr, flush=True)
    print(f"8-way fusion on the demo model (6 layers), {a.lines} lines of real text, CPU\n")
    print("| adapters kept | lowest layers dropped | before ex/s | after ex/s | speed-up |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['adapters']} | {r['dropped_layers']} | {r['before_per_sec']:.1f} | "
              f"{r['after_per_sec']:.1f} | {r['speedup']:.2f}x |")
    return rows


def suite_part(a):
    rows = []
    sources = sorted(p.parent.name for p in (a.suite / "sources").glob("*/adapter"))
    for target in a.targets:
        run = a.suite / target / "seed1" / "fusion"
        own = a.suite / target / "seed1" / target / "adapter"
        adapters = [a.suite / "sources" / s / "adapter" for s in sources] + [own]
        test = a.data / target / "test.csv"
        train = a.data / target / "train.csv"
        for t in a.thresholds:
            for layers in a.drop_layers:
                for steps in a.retrain_steps:
                    if t == 0 and layers == 0:
                        continue
                    extra = ["--threshold", t, "--drop-layers", layers]
                    if steps:
                        extra += ["--retrain-steps", steps, "--train", train]
                    r = prune(cp.DEMO_MODEL, adapters, run / "fusion", run / "head", test,
                              Path(tempfile.mkdtemp()) / "p", extra, a.repeats)
                    if r is None:  # one adapter left: no fusion to retrain
                        continue
                    rows.append({"target": target, "threshold": t, "dropped_layers": layers,
                                 "retrain_steps": steps, "kept": r["kept"],
                                 "accuracy_before": r["before"]["metrics"]["accuracy"],
                                 "accuracy_after": r["after"]["metrics"]["accuracy"],
                                 "speedup": r["after"]["examples_per_second"] /
                                 r["before"]["examples_per_second"]})
                    print(f"{target} t={t} k={layers} r={steps}: {rows[-1]}", file=sys.stderr,
                          flush=True)
    print("| target | threshold | lowest layers dropped | retrained steps | adapters kept | "
          "accuracy before | after | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['target']} | {r['threshold']} | {r['dropped_layers']} | "
              f"{r['retrain_steps'] or '-'} | {len(r['kept'])} | {r['accuracy_before']:.3f} | "
              f"{r['accuracy_after']:.3f} | {r['speedup']:.2f}x |")
    return rows


def figure(rows, path, suite):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.5, 3.6), dpi=120)
    if suite:
        for target in sorted({r["target"] for r in rows}):
            for retrained in (False, True):
                rs = [r for r in rows if r["target"] == target
                      and bool(r.get("retrain_steps")) == retrained]
                if rs:
                    ax.scatter([r["speedup"] for r in rs],
                               [r["accuracy_after"] - r["accuracy_before"] for r in rs],
                               marker="^" if retrained else "o",
                               label=target + (" (retrained)" if retrained else ""))
        ax.set_ylabel("accuracy change (test)")
    else:
        for kept in sorted({r["adapters"] for r in rows}, reverse=True):
            rs = [r for r in rows if r["adapters"] == kept]
            ax.plot([r["dropped_layers"] for r in rs], [r["speedup"] for r in rs], marker="o",
                    label=f"{kept} adapters kept")
        ax.set_xlabel("lowest layers without the fusion")
        ax.set_ylabel("speed-up over the 8-way fusion")
    if suite:
        ax.set_xlabel("speed-up over the unpruned fusion")
    ax.grid(alpha=0.3)
    # Outside the data: no point hides behind it.
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lines", type=int, default=500)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--suite", type=Path)
    p.add_argument("--data", type=Path, default=cp.ROOT / "benchmarks" / "transfer-data")
    p.add_argument("--targets", nargs="+", default=["section4", "use4"])
    p.add_argument("--thresholds", nargs="+", type=float, default=[0.0, 0.1, 0.2])
    p.add_argument("--drop-layers", nargs="+", type=int, default=[0, 2, 4])
    p.add_argument("--retrain-steps", nargs="+", type=int, default=[0],
                   help="--suite: also prune with --retrain-steps N on the target's train.csv "
                        "(0: without)")
    p.add_argument("--json-out", type=Path)
    p.add_argument("--figure", type=Path)
    a = p.parse_args()
    if not cp.RUST_BIN.exists():
        sys.exit("build first: cargo build --release")
    rows = suite_part(a) if a.suite else speed_part(a)
    if a.json_out:
        a.json_out.write_text(json.dumps({"suite": bool(a.suite), "rows": rows}, indent=2) + "\n")
    if a.figure:
        figure(rows, a.figure, bool(a.suite))


if __name__ == "__main__":
    main()
