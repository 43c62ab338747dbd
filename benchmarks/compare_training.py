#!/usr/bin/env python3
"""Training-speed benchmark: Adapter Studio's trainer against the Python `adapters` library.

For each dataset (fixed: every text truncated at 128 tokens, fixed padding; spread: realistic
lengths, dynamic padding) it trains a seq_bn adapter on the demo model with the Python library
(benchmarks/python_train.py, AdapterTrainer defaults) and with target/release/adapter-studio,
one process after the other, on the same CSV with the same batch size and number of steps.
Each child reports its training-loop time; the driver takes each child's peak RSS from
os.wait4(). Prints a Markdown table with examples/s, peak RSS and the Rust/Python ratios.

With --repeat N each case runs N rounds, the order of the two trainers alternating between
rounds; the ratios reported are the medians of the per-round ratios (on a shared machine the
speed drifts by several percent over minutes, which a single pair of runs cannot separate from
a real difference).

Usage (build first: cargo build --release):
  .venv/bin/python benchmarks/compare_training.py [--rows 2000] [--max-steps N] [--repeat N]
      [--json-out results.json] [--python-only]
"""

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_bench_data import write_datasets  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PYTHON_TRAIN = ROOT / "benchmarks" / "python_train.py"
RUST_BIN = ROOT / "target" / "release" / "adapter-studio"
DEMO_MODEL = ROOT / ".venv" / "demo-model"

# Settings shared by both trainers.
METHOD, LR, SEED, MAX_LENGTH = "seq_bn", "1e-4", "42", "128"

# (dataset, padding) rows of the table with the Rust/Python targets of the project issue:
# throughput ratio at least, peak-memory ratio below.
CASES = [("fixed", "fixed", 1.0), ("spread", "dynamic", 1.3)]
# The frozen-prefix cases (--frozen-cases, on --real-csv): (name, epochs, target, extra
# arguments of ours, of the library's). AdapterDrop's common setting (no adapter in the lowest
# 4 of 6 layers) and the head-only baseline; ours caches the frozen layers' outputs.
FROZEN_CASES = [
    ("leave_out4", 5, 3.0, ["--adapter-drop-layers", "4", "--cache-frozen", "auto"],
     ["--leave-out", "0,1,2,3"]),
    ("head_only", 10, 5.0, ["--method", "head-only", "--cache-frozen", "auto"], ["--head-only"]),
]
MEMORY_TARGET = 1.0

# What each trainer's last stdout line (a JSON object) must hold.
RESULT_KEYS = ("steps", "examples", "train_secs", "examples_per_sec")


def common_args(a):
    steps = ["--max-steps", str(a.max_steps)] if a.max_steps else []
    return ["--batch-size", str(a.batch_size), "--max-length", MAX_LENGTH, "--lr", LR,
            "--seed", SEED, "--device", a.device, *steps]


def rust_command(a, csv_path, padding, out_dir):
    """The Adapter Studio command line: edit here when the CLI changes."""
    cmd = [str(a.rust_bin), "train", "--model", str(a.model), "--train", str(csv_path),
           "--validation-split", "0", "--method", METHOD, "--epochs", str(a.epochs),
           "--out", str(out_dir), "--json", *common_args(a),
           # The same number of steps as the library: no minimum step budget.
           "--min-steps", "0"]
    return cmd + (["--pad-to-max-length"] if padding == "fixed" else [])


def python_command(a, csv_path, padding, out_dir):
    return [sys.executable, str(PYTHON_TRAIN), "--model", str(a.model), "--train", str(csv_path),
            "--padding", padding, "--epochs", str(a.epochs), "--out", str(out_dir),
            *common_args(a)]


def run_child(cmd, verbose):
    """Run cmd to completion; returns (its last stdout line as JSON, peak RSS in MiB, CPUs
    other processes kept busy meanwhile on average)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
        busy0, t0 = busy_cpu_secs(), time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=None if verbose else err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        own = usage.ru_utime + usage.ru_stime
        others = max(0.0, busy_cpu_secs() - busy0 - own) / (time.monotonic() - t0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        lines = out.read().strip().splitlines()
        if proc.returncode != 0 or not lines:
            err.seek(0)
            tail = "".join(err.readlines()[-30:])
            sys.exit(f"{cmd[0]} failed with exit code {proc.returncode}:\n{tail}")
    try:
        result = json.loads(lines[-1])
        missing = [k for k in RESULT_KEYS if not isinstance(result.get(k), (int, float))]
    except (json.JSONDecodeError, AttributeError):
        missing = RESULT_KEYS
    if missing:
        sys.exit(f"{cmd[0]}: the last stdout line lacks {', '.join(missing)}: {lines[-1][:300]}")
    return result, usage.ru_maxrss / 1024, others  # ru_maxrss is in KiB on Linux


def busy_cpu_secs():
    """CPU seconds all processes have spent since boot (/proc/stat: all but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def machine_info():
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields = [line.split(":", 1) for line in cpuinfo.splitlines() if ":" in line]
    models = [v.strip() for k, v in fields if k.strip() == "model name"]
    cores = {(p, c) for p, c in zip(
        [v.strip() for k, v in fields if k.strip() == "physical id"],
        [v.strip() for k, v in fields if k.strip() == "core id"])}

    def version(pkg):
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "cpu": models[0] if models else platform.processor(),
        "logical_cpus": os.cpu_count(),
        "physical_cores": len(cores) or None,
        "usable_cpus": len(os.sched_getaffinity(0)),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        **{pkg: version(pkg) for pkg in ("torch", "transformers", "adapters", "accelerate")},
        "thread_env": {k: v for k, v in os.environ.items()
                       if k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS")},
    }


def frozen_benchmark(a, out_dir):
    """The frozen-prefix cases on a real-text CSV, each trainer once per seed."""
    runs, ratios = [], []
    for name, epochs, target, rust_extra, python_extra in FROZEN_CASES:
        rounds = []
        for seed in a.seeds:
            by_impl = {}
            for impl in ("python", "rust"):
                b = argparse.Namespace(**{**vars(a), "epochs": epochs})
                if impl == "python":
                    cmd = python_command(b, a.real_csv, "dynamic", out_dir / f"{name}-py-{seed}")
                    cmd += python_extra
                else:
                    cmd = rust_command(b, a.real_csv, "dynamic", out_dir / f"{name}-rs-{seed}")
                    cmd = [c for c in cmd if c != "seq_bn" and c != "--method"] + rust_extra
                    if "--method" not in rust_extra:
                        cmd += ["--method", METHOD]
                cmd[cmd.index("--seed") + 1] = str(seed)
                result, rss, others = run_child(cmd, a.verbose)
                by_impl[impl] = {"case": name, "impl": impl, "seed": seed,
                                 "peak_rss_mib": round(rss, 1), "other_cpus_busy": round(others, 2),
                                 **{k: result[k] for k in RESULT_KEYS}}
                runs.append(by_impl[impl])
            rounds.append(by_impl)
        per_seed = [r["rust"]["examples_per_sec"] / r["python"]["examples_per_sec"] for r in rounds]
        ratios.append({"case": name, "epochs": epochs, "throughput_ratio": round(statistics.median(per_seed), 3),
                       "per_seed": [round(x, 3) for x in per_seed], "target": target})
    return runs, ratios


def benchmark(a, data_dir, out_dir):
    """Runs every case `a.repeat` times, alternating which trainer goes first (a shared or
    throttled machine drifts over minutes); reports each run, and per case the median run of
    each trainer and the median of the per-round ratios."""
    paths = write_datasets(data_dir, a.rows, a.data_seed)
    runs, ratios = [], []
    for dataset, padding, target in CASES:
        commands = [("python", python_command)]
        if not a.python_only:
            commands.append(("rust", rust_command))
        rounds = []
        for round_no in range(a.repeat):
            by_impl = {}
            order = commands if round_no % 2 == 0 else commands[::-1]
            for impl, command in order:
                cmd = command(a, paths[dataset], padding, out_dir / f"{dataset}-{impl}-{round_no}")
                result, rss, others = run_child(cmd, a.verbose)
                if others > 0.2:
                    print(f"warning: other processes kept {others:.1f} CPUs busy during this run: "
                          "its timing is not clean", file=sys.stderr)
                by_impl[impl] = {"dataset": dataset, "padding": padding, "impl": impl,
                                 "round": round_no, "peak_rss_mib": round(rss, 1),
                                 "other_cpus_busy": round(others, 2),
                                 **{k: result[k] for k in RESULT_KEYS},
                                 "torch_threads": result.get("torch_threads")}
                runs.append(by_impl[impl])
            rounds.append(by_impl)
        if a.python_only:
            continue
        for r in rounds:
            py, rs = r["python"], r["rust"]
            if (py["steps"], py["examples"]) != (rs["steps"], rs["examples"]):
                print(f"warning: {dataset}: steps/examples differ: python {py['steps']}/"
                      f"{py['examples']}, rust {rs['steps']}/{rs['examples']}", file=sys.stderr)
        per_round = [r["rust"]["examples_per_sec"] / r["python"]["examples_per_sec"]
                     for r in rounds]
        memory = statistics.median(r["rust"]["peak_rss_mib"] / r["python"]["peak_rss_mib"]
                                   for r in rounds)
        throughput = statistics.median(per_round)
        ratios.append({"dataset": dataset, "padding": padding,
                       "throughput_ratio": round(throughput, 3),
                       "throughput_ratio_per_round": [round(x, 3) for x in per_round],
                       "throughput_target": target, "throughput_ok": throughput >= target,
                       "memory_ratio": round(memory, 3), "memory_target": MEMORY_TARGET,
                       "memory_ok": memory < MEMORY_TARGET})
    return runs, ratios


def mark(ok):
    return "ok" if ok else "MISSED"


def markdown(report):
    m = report["machine"]
    lines = [f"Machine: {m['cpu']}, {m['usable_cpus']} usable CPUs "
             f"({m['physical_cores']} physical cores), torch {m['torch']} "
             f"with {report['runs'][0]['torch_threads']} threads, device {report['device']}",
             "",
             "| dataset | padding | impl | steps | examples | train s | examples/s "
             "| peak RSS MiB |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in report["runs"]:
        lines.append(f"| {r['dataset']} | {r['padding']} | {r['impl']} | {r['steps']} | "
                     f"{r['examples']} | {r['train_secs']:.2f} | {r['examples_per_sec']:.2f} | "
                     f"{r['peak_rss_mib']:.0f} |")
    if report["ratios"]:
        lines += ["", "| dataset | padding | throughput Rust/Python (target) | "
                  "peak RSS Rust/Python (target) |", "|---|---|---|---|"]
        for r in report["ratios"]:
            rounds = ", ".join(f"{x:.2f}" for x in r["throughput_ratio_per_round"])
            lines.append(f"| {r['dataset']} | {r['padding']} | {r['throughput_ratio']:.2f}x "
                         f"(rounds: {rounds}; >= {r['throughput_target']}, "
                         f"{mark(r['throughput_ok'])}) | "
                         f"{r['memory_ratio']:.2f}x (< {r['memory_target']}, "
                         f"{mark(r['memory_ok'])}) |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=2000, help="examples per dataset (default 2000)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=0, help="stop after N steps (0: full epochs)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--model", type=Path, default=DEMO_MODEL)
    p.add_argument("--rust-bin", type=Path, default=RUST_BIN)
    p.add_argument("--data-dir", type=Path, default=None,
                   help="write the CSVs here and keep them (default: a temporary folder)")
    p.add_argument("--data-seed", type=int, default=7)
    p.add_argument("--python-only", action="store_true", help="run only the Python library")
    p.add_argument("--json-out", type=Path, default=None, help="also write the results as JSON")
    p.add_argument("--verbose", action="store_true", help="show the children's stderr")
    p.add_argument("--repeat", type=int, default=1,
                   help="rounds per case, alternating which trainer runs first (ratios: median)")
    p.add_argument("--frozen-cases", action="store_true",
                   help="instead: the frozen-prefix cases (leave_out of 4 layers, 5 epochs; "
                        "head-only, 10 epochs) on --real-csv, once per --seeds")
    p.add_argument("--real-csv", type=Path, default=None,
                   help="a real-text CSV (text,label), e.g. a task of make_transfer_suite.py")
    p.add_argument("--seeds", type=lambda v: [int(x) for x in v.split(",")], default=[42])
    a = p.parse_args()
    if a.frozen_cases:
        if not (a.real_csv and a.real_csv.is_file()):
            sys.exit("--frozen-cases needs --real-csv FILE")
        with tempfile.TemporaryDirectory(prefix="adapter-bench-") as tmp:
            runs, ratios = frozen_benchmark(a, Path(tmp))
        report = {"machine": machine_info(), "device": a.device, "runs": runs, "ratios": ratios}
        print(json.dumps(report["ratios"], indent=2))
        if a.json_out:
            a.json_out.write_text(json.dumps(report, indent=2) + "\n")
        return

    if not a.python_only and not a.rust_bin.is_file():
        sys.exit(f"{a.rust_bin} not found: build it first with `cargo build --release` "
                 "(or pass --rust-bin PATH, or --python-only)")
    if not (a.model / "config.json").is_file():
        sys.exit(f"no model at {a.model} (run scripts/setup.sh, or pass --model DIR)")

    with tempfile.TemporaryDirectory(prefix="adapter-bench-") as tmp:
        data_dir = a.data_dir or Path(tmp) / "data"
        runs, ratios = benchmark(a, data_dir, Path(tmp) / "out")

    report = {"machine": machine_info(), "device": a.device,
              "settings": {"rows": a.rows, "batch_size": a.batch_size, "epochs": a.epochs,
                           "max_steps": a.max_steps or None, "max_length": int(MAX_LENGTH),
                           "lr": float(LR), "seed": int(SEED), "method": METHOD,
                           "data_seed": a.data_seed, "repeat": a.repeat},
              "runs": runs, "ratios": ratios}
    print(markdown(report))
    if a.json_out:
        a.json_out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
