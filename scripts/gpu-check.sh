#!/usr/bin/env bash
# The CUDA check: a short training on the GPU (full adapter and LoRA), the trained adapters'
# predictions on GPU vs CPU, and the GPU training benchmark against the Python library.
#
# Two modes:
# - The GPU machine of the device tool (no network, no Rust, no GTK, its own Python with
#   PyTorch 2.11): used when .gpu/adapter-studio.xz (made by scripts/gpu-build.sh) is there and
#   the project's .venv is not (GPU_MACHINE=1 forces it).
#   First, here:  scripts/gpu-build.sh          (.gpu/: the binary, wheels, demo model files)
#   There, carrying .gpu:  bash scripts/gpu-check.sh    (about 5 minutes on an H200)
# - Anywhere else (or with BIN set): the project's own .venv and build.
#   DEVICE=cpu SKIP_BENCH=1 BIN=target/debug/adapter-studio scripts/gpu-check.sh   (a dry run)
#
# Everything is written to $WORK (default target/gpu-check); at the end, even after a failure,
# at most 8 files are copied to $OUT (default $WORK/out): gpu-check.log (the whole output),
# summary.txt, bench-<device>.json/.txt, and results.tar.gz (every JSON and log, no weights).
# Environment: DEVICE (cuda), BIN, SKIP_BENCH, BENCH_ROWS (960), BENCH_REPEAT (3).
set -euo pipefail
cd "$(dirname "$0")/.."
dev=${DEVICE:-cuda}
work=${WORK:-target/gpu-check}
out=${OUT:-$work/out}
rm -rf "$work"/{run,lora,out,*.json,*.txt,*.log,*.tar.gz}
mkdir -p "$work" "$out"
exec 3>&1 4>&2 > >(tee "$work/gpu-check.log") 2>&1
log() { printf '[gpu-check %s] %s\n' "$(date +%T)" "$*"; }

collect() {
  local rc=$?
  set +e
  sleep 1; exec 1>&3 2>&4  # tee may be gone (a timeout signals the whole process group)
  log "exit status $rc; copying results to $out"
  tar -czf "$out/results.tar.gz" -C "$work" --exclude='*.safetensors' --exclude='*.pt' \
    --exclude='*.bin' --exclude=out . 2>/dev/null
  for f in summary.txt bench-"$dev".json bench-"$dev".txt; do
    [[ -f $work/$f ]] && cp "$work/$f" "$out/"
  done
  { cat "$work/gpu-check.log"; echo "[gpu-check] exit status $rc"; } > "$out/gpu-check.log"
}
trap collect EXIT
trap 'exit 143' TERM INT

# The device tool's machine: .gpu/ carried there, and no project .venv (GPU_MACHINE=1 forces it).
if [[ -z "${BIN:-}" && -f .gpu/adapter-studio.xz && ( -n "${GPU_MACHINE:-}" || ! -x .venv/bin/python ) ]]; then
  # --- The GPU machine --------------------------------------------------------------------
  PY=python3
  bin=target/gpu-bin/adapter-studio  # two folders below the checkout, as target/release/: `demo` works
  mkdir -p target/gpu-bin
  python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
    .gpu/adapter-studio.xz "$bin"
  chmod +x "$bin"
  # The machine's own torch; the adapters library and the transformers (4.57), tokenizers and
  # huggingface_hub (0.x) versions it needs come from the carried wheels, in /tmp/site ahead of
  # site-packages; .gpu/whl/opt/ (requests and its dependencies) only where not installed.
  log "installing the carried wheels into /tmp/site"
  whl=(.gpu/whl/*.whl)
  for w in .gpu/whl/opt/*.whl; do
    [[ -f $w ]] || continue
    mod=$(basename "$w"); mod=${mod%%-*}
    python3 -c "import importlib.util as u, sys; sys.exit(u.find_spec('$mod') is None)" 2>/dev/null \
      || whl+=("$w")
  done
  if ! python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site "${whl[@]}"; then
    log "pip failed: unpacking the wheels instead"
    for w in "${whl[@]}"; do python3 -m zipfile -e "$w" /tmp/site; done
  fi
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  torch_lib=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')/lib
  export LD_LIBRARY_PATH=$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  # The demo model's weights (90 MB) exceed what the device tool carries (64 MiB in all): this
  # check runs on RANDOM weights of all-MiniLM-L6-v2's shape (its config and tokenizer),
  # seeded, made here. Speed and GPU/CPU agreement do not depend on the weights' values;
  # accuracies in this check's output mean nothing.
  stand_in=1
  if [[ ! -f .venv/demo-model/model.safetensors ]]; then
    log "stand-in demo model: random weights (seed 0) of the demo model's shape"
    mkdir -p .venv && rm -rf .venv/demo-model && cp -r .gpu/demo-model .venv/demo-model
    python3 - <<'PYEOF'
import torch
from transformers import BertConfig, BertModel
torch.manual_seed(0)
BertModel(BertConfig.from_json_file(".venv/demo-model/config.json")).save_pretrained(
    ".venv/demo-model", safe_serialization=True)
print("stand-in demo model: random weights (seed 0) of all-MiniLM-L6-v2's shape, "
      "not the pretrained model: the 90 MB weights do not fit the device transfer")
PYEOF
  fi
else
  # --- The project's own environment -------------------------------------------------------
  scripts/setup.sh --test
  PY=.venv/bin/python
  bin=${BIN:-target/release/adapter-studio}
  if [[ -z "${BIN:-}" ]]; then
    log "release build"
    cargo build --release 2>&1 | tail -2
  fi
fi
model=.venv/demo-model

$PY - "$dev" <<'PYEOF' | tee "$work/summary.txt"
import importlib.metadata as md, sys, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
print(", ".join(f"{p} {md.version(p)}" for p in
                ("transformers", "tokenizers", "huggingface_hub", "adapters", "accelerate")))
if sys.argv[1] != "cpu":
    assert torch.cuda.is_available(), "torch sees no GPU"
    print(torch.cuda.get_device_name(0))
PYEOF
$bin --version | tee -a "$work/summary.txt"
if [[ -n "${stand_in:-}" ]]; then
  echo "model: RANDOM weights (seed 0) of the demo model's shape, a stand-in for the pretrained" \
    "model (its weights do not fit the device transfer)" | tee -a "$work/summary.txt"
fi

log "a short training on $dev"
$bin train --model "$model" --train assets/datasets/sentiment/train.csv \
  --validation assets/datasets/sentiment/validation.csv --max-steps 60 --max-length 64 \
  --device "$dev" --out "$work/run" --json | tail -1 | tee "$work/train.json"
$PY -c "import json,sys; d=json.load(open(sys.argv[1]))['device']; print('trained on', d); \
assert d.startswith(sys.argv[2]), 'not trained on ' + sys.argv[2]" "$work/run/run.json" "$dev" |
  tee -a "$work/summary.txt"

log "a LoRA training on $dev"
$bin train --model "$model" --train assets/datasets/sentiment/train.csv \
  --validation assets/datasets/sentiment/validation.csv --max-steps 30 --max-length 64 \
  --method lora --device "$dev" --out "$work/lora" --json | tail -1 | tee "$work/train-lora.json"

log "predictions: $dev vs cpu"
texts=(--text "The battery lasts for days, I love it." --text "Broke after a week, avoid."
       --text "Not bad at all, though the screen is dim.")
for run in run lora; do
  for d in "$dev" cpu; do
    $bin predict --model "$model" --adapter "$work/$run/adapter" --head "$work/$run/head" \
      --device "$d" --json "${texts[@]}" > "$work/predict-$run-$d.json"
  done
done
$PY - "$work" "$dev" <<'PYEOF' | tee -a "$work/summary.txt"
import json, sys
work, dev = sys.argv[1], sys.argv[2]
for run in ("run", "lora"):
    a, b = (json.load(open(f"{work}/predict-{run}-{d}.json"))["predictions"] for d in (dev, "cpu"))
    diff = max(abs(x - y) for p, q in zip(a, b) for x, y in zip(p["logits"], q["logits"]))
    same = all(p["label"] == q["label"] for p, q in zip(a, b))
    print(f"{run}: max |logit({dev}) - logit(cpu)| = {diff:.2e}; same labels: {same}")
    assert diff < 1e-3 and same, f"{dev} and cpu disagree"
PYEOF

if [[ -z "${SKIP_BENCH:-}" ]]; then
  log "training benchmark on $dev vs the Python library"
  $PY benchmarks/compare_training.py --device "$dev" --rows "${BENCH_ROWS:-960}" \
    --repeat "${BENCH_REPEAT:-3}" --rust-bin "$bin" --json-out "$work/bench-$dev.json" 2>&1 |
    tee "$work/bench-$dev.txt"
  tail -n 4 "$work/bench-$dev.txt" >> "$work/summary.txt"
fi
log "done"
