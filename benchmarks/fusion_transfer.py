#!/usr/bin/env python3
"""Does AdapterFusion help on small real-text targets? The transfer suite, end to end.

Builds (if missing) the real-text suite of benchmarks/make_transfer_suite.py (Debian package
descriptions: 3 source tasks, small 4-class targets with 25 training examples per class), then:

1. stage 1: one seq_bn adapter per source task (Adapter Studio, studio defaults, seed 1);
2. for each target and seed:
   - head-only        a head on the frozen base            (adapter-studio train --method head-only)
   - adapter          the target's own seq_bn adapter       (adapter-studio train)
   - full             full fine-tuning (--full-seeds only)  (adapter-studio train --method full)
   - fusion           Fuse(sources + the target's adapter), the studio defaults (adapter-studio fuse)
   - fusion-paper     the same fusion with --preset paper   (adapter-studio fuse --preset paper)
   - python-fusion    the Python library's fusion over the very same adapter folders
                      (benchmarks/python_fusion.py: AdapterTrainer with its defaults but lr
                      5e-5 and --python-epochs, default 10: the paper's stage-2 settings)

Every run uses 30 examples per class of the target's validation file (--validation-per-class)
for its best checkpoint (ours) and is scored on the target's test file (accuracy), so
selection and score use different data. Texts are cut at --max-length 48 tokens for every
trainer (CPU time). The library's run has
no checkpoint selection: its final model is scored. Prints a Markdown table of mean ± std over
seeds and writes every number to --json-out. Finished runs are cached under --work (re-running
continues).

Usage (after scripts/setup.sh --test and cargo build --release):
  .venv/bin/python benchmarks/fusion_transfer.py [--targets section4 use4] [--seeds 1 2 3]
      [--full-seeds 1] [--python-epochs 10] [--max-length 48] [--json-out results.json]
"""

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "adapter-studio"
PY = ROOT / ".venv" / "bin" / "python"
SUITE = ROOT / "benchmarks" / "make_transfer_suite.py"
PYTHON_FUSION = ROOT / "benchmarks" / "python_fusion.py"

METHODS = ["head-only", "adapter", "full", "fusion", "fusion-paper", "python-fusion"]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_json(cmd, cache):
    """Runs cmd (printing one JSON line last) unless `cache` holds its result."""
    if cache.exists():
        return json.loads(cache.read_text())
    log(" ".join(str(c) for c in cmd))
    t0 = time.time()
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(map(str, cmd))}\n{p.stderr[-3000:]}")
    result = json.loads(p.stdout.strip().splitlines()[-1])
    result["wall_secs"] = time.time() - t0
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(result))
    return result


def ours_eval(run, parts, test, cache):
    """Test accuracy of a finished run of ours (its best checkpoint)."""
    cmd = [BIN, "eval", "--model", "demo", "--device", "cpu", "--json", "--data", test]
    for a in parts.get("adapters", []):
        cmd += ["--adapter", a]
    if parts.get("fusion"):
        cmd += ["--fusion", parts["fusion"]]
    if parts.get("model"):
        cmd[cmd.index("demo")] = parts["model"]
    cmd += ["--head", run / "head"]
    return run_json(cmd, cache)


def small_validation(d, per_class, work):
    """A stratified subset of d/validation.csv, `per_class` rows of each label (the first ones;
    the suite's files are shuffled): every run evaluates it several times, which on a CPU costs
    as much as the training."""
    if per_class <= 0:
        return d / "validation.csv"
    with open(d / "validation.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    taken, out_rows = {}, []
    for r in rows:
        if taken.get(r["label"], 0) < per_class:
            taken[r["label"]] = taken.get(r["label"], 0) + 1
            out_rows.append(r)
    path = work / d.name / f"validation-{per_class}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["text", "label"])
        w.writeheader()
        w.writerows(out_rows)
    return path


def train(args, out, extra):
    cmd = [BIN, *extra, "--model", "demo", "--device", "cpu", "--json",
           "--max-length", str(args.max_length), "--out", out]
    result = run_json(cmd, out.with_suffix(".result.json"))
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "transfer-data")
    p.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "transfer-work")
    p.add_argument("--targets", nargs="+", default=["section4", "use4"])
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--full-seeds", nargs="*", type=int, default=[1],
                   help="seeds that also run full fine-tuning (slow on a CPU)")
    p.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    p.add_argument("--source-epochs", type=int, default=3)
    p.add_argument("--python-epochs", type=float, default=10)
    p.add_argument("--max-length", type=int, default=48)
    p.add_argument("--fusion-args", nargs="*", default=[],
                   help="extra arguments for our studio-default fusion (experiments)")
    p.add_argument("--validation-per-class", type=int, default=30,
                   help="validation rows per class used for checkpoint selection (0: all)")
    p.add_argument("--json-out", type=Path)
    a = p.parse_args()

    if not (a.data / "suite.json").exists():
        subprocess.run([sys.executable, SUITE, "--out", a.data], check=True)
    suite = json.loads((a.data / "suite.json").read_text())
    sources = [t["name"] for t in suite["tasks"] if t["role"] == "source"]
    a.work.mkdir(parents=True, exist_ok=True)

    # Stage 1: the source adapters (one seed: the fusion's inputs, shared by every target).
    source_adapters = []
    for s in sources:
        d = a.data / s
        out = a.work / "sources" / s
        train(a, out, ["train", "--train", d / "train.csv", "--validation", d / "validation.csv",
                       "--epochs", str(a.source_epochs), "--min-steps", "0", "--seed", "1",
                       "--name", s])
        source_adapters.append(out / "adapter")

    rows = {}
    # Seeds outermost: an interrupted suite still covers every target.
    for seed in a.seeds:
        for target in a.targets:
            d = a.data / target
            val = small_validation(d, a.validation_per_class, a.work)
            data = ["--train", d / "train.csv", "--validation", val]
            test = d / "test.csv"
            w = a.work / target / f"seed{seed}"
            res = {}

            def record(method, run, parts, result):
                ev = ours_eval(run, parts, test, run.with_suffix(".test.json"))
                best = result.get("best") or {}
                res[method] = {
                    "validation_accuracy": best.get("metrics", {}).get("accuracy"),
                    "test_accuracy": ev["accuracy"],
                    "steps": result["steps"],
                    "early_stopped": result.get("early_stopped"),
                    "train_secs": result["train_secs"],
                    "fusion_entropy": best.get("metrics", {}).get("fusion_entropy"),
                }

            seed_args = ["--seed", str(seed)]
            if "head-only" in a.methods:
                run = w / "head-only"
                r = train(a, run, ["train", *data, *seed_args, "--method", "head-only",
                                   "--name", "head_only"])
                record("head-only", run, {}, r)
            own = w / target  # the adapter's name is the folder's: the target task
            r = train(a, own, ["train", *data, *seed_args])
            if "adapter" in a.methods:
                record("adapter", own, {"adapters": [own / "adapter"]}, r)
            if "full" in a.methods and seed in a.full_seeds:
                run = w / "full"
                r = train(a, run, ["train", *data, *seed_args, "--method", "full", "--lr", "5e-5"])
                record("full", run, {"model": run / "model"}, r)
            adapters = [*source_adapters, own / "adapter"]
            fuse_args = ["fuse", *data, *seed_args]
            for x in adapters:
                fuse_args += ["--adapter", x]
            for method, extra in [("fusion", a.fusion_args), ("fusion-paper", ["--preset", "paper"])]:
                if method in a.methods:
                    run = w / method.replace("-", "_")
                    r = train(a, run, [*fuse_args, *extra])
                    record(method, run, {"adapters": adapters, "fusion": run / "fusion"}, r)
            if "python-fusion" in a.methods:
                cmd = [PY, PYTHON_FUSION, "--mode", "fusion", *data, "--test", test,
                       "--seed", str(seed), "--epochs", str(a.python_epochs),
                       "--max-length", str(a.max_length)]
                for x in adapters:
                    cmd += ["--adapter", x]
                r = run_json(cmd, w / "python_fusion.result.json")
                res["python-fusion"] = {
                    "validation_accuracy": r["accuracy"],
                    "test_accuracy": r.get("test_accuracy"),
                    "steps": r["steps"],
                    "train_secs": r["train_secs"],
                }
            rows[(target, seed)] = res
            log(f"{target} seed {seed}: " + ", ".join(
                f"{m} {v['test_accuracy']:.3f}" for m, v in res.items()))

    # Table: per target and method, mean ± std of the test accuracy over seeds.
    print("| target | " + " | ".join(a.methods) + " |")
    print("|---|" + "---:|" * len(a.methods))
    summary = {}
    for target in a.targets:
        cells = []
        for m in a.methods:
            xs = [rows[(target, s)][m]["test_accuracy"] for s in a.seeds
                  if m in rows[(target, s)]]
            if not xs:
                cells.append("–")
                continue
            mean = statistics.mean(xs)
            std = statistics.stdev(xs) if len(xs) > 1 else 0.0
            summary[f"{target}/{m}"] = {"mean": mean, "std": std, "n": len(xs), "values": xs}
            cells.append(f"{mean:.3f} ± {std:.3f} (n={len(xs)})")
        print(f"| {target} | " + " | ".join(cells) + " |")
    if a.json_out:
        a.json_out.write_text(json.dumps({
            "settings": vars(a) | {"data": str(a.data), "work": str(a.work),
                                   "json_out": str(a.json_out)},
            "summary": summary,
            "runs": {f"{t}/seed{s}": v for (t, s), v in rows.items()},
        }, indent=2, default=str))


if __name__ == "__main__":
    main()
