#!/usr/bin/env bash
# The CUDA check: a short training on the GPU, the trained adapter's predictions on GPU vs CPU,
# and the GPU training benchmark against the Python library. Results go to ${OUT:-target/gpu-check}.
#
# On the GPU machine of the device tool (no network, no Rust, PyTorch 2.11): first, here,
#   scripts/gpu-build.sh          # .gpu/: the binary built for it, the library's wheels, the
#                                 # demo model's config and tokenizer
# then run there, carrying .gpu:
#   bash scripts/gpu-check.sh     # about 5 minutes
# A dry run of the same steps on this machine, without a GPU:
#   DEVICE=cpu SKIP_BENCH=1 BIN=target/debug/adapter-studio scripts/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-target/gpu-check}
dev=${DEVICE:-cuda}
mkdir -p "$out"
log() { printf '\033[1m[gpu-check]\033[0m %s\n' "$*"; }

if [[ -z "${BIN:-}" && -x .gpu/bin/adapter-studio ]]; then
  # The GPU machine: its own Python and PyTorch; the adapters library and the transformers,
  # tokenizers and hub versions it needs come from the carried wheels.
  PY=python3
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .gpu/whl/*.whl
  export PYTHONPATH=/tmp/site
  torch_lib=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')/lib
  export LD_LIBRARY_PATH=$torch_lib:${LD_LIBRARY_PATH:-}
  bin=.gpu/bin/adapter-studio
  # The demo model's weights (90 MB) exceed what the device tool carries: the check runs on
  # random weights of its shape (same config and tokenizer), made here with a fixed seed.
  if [[ ! -f .venv/demo-model/model.safetensors ]]; then
    mkdir -p .venv && rm -rf .venv/demo-model && cp -r .gpu/demo-model .venv/demo-model
    python3 - <<'PYEOF'
import torch
from transformers import BertConfig, BertModel
torch.manual_seed(0)
BertModel(BertConfig.from_json_file(".venv/demo-model/config.json")).save_pretrained(
    ".venv/demo-model", safe_serialization=True)
print("stand-in demo model: random weights of all-MiniLM-L6-v2's shape")
PYEOF
  fi
else
  scripts/setup.sh --test
  PY=.venv/bin/python
  bin=${BIN:-target/release/adapter-studio}
  if [[ -z "${BIN:-}" ]]; then
    log "release build"
    cargo build --release 2>&1 | tail -2
  fi
fi
model=.venv/demo-model

$PY - "$dev" <<'PYEOF' | tee "$out/torch.txt"
import sys, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if sys.argv[1] != "cpu":
    assert torch.cuda.is_available(), "torch sees no GPU"
    print(torch.cuda.get_device_name(0))
PYEOF
$bin --version | tee -a "$out/torch.txt"

log "a short training on $dev"
rm -rf "$out/run"
$bin train --model "$model" --train assets/datasets/sentiment/train.csv \
  --validation assets/datasets/sentiment/validation.csv --max-steps 60 --max-length 64 \
  --device "$dev" --out "$out/run" --json | tail -1 | tee "$out/train.json"
$PY -c "import json,sys; d=json.load(open(sys.argv[1]))['device']; print('trained on', d); \
assert d.startswith(sys.argv[2]), 'not trained on ' + sys.argv[2]" "$out/run/run.json" "$dev"

log "a LoRA training on $dev"
rm -rf "$out/lora"
$bin train --model "$model" --train assets/datasets/sentiment/train.csv \
  --validation assets/datasets/sentiment/validation.csv --max-steps 30 --max-length 64 \
  --method lora --device "$dev" --out "$out/lora" --json | tail -1 | tee "$out/train-lora.json"

log "predictions: $dev vs cpu"
texts=(--text "The battery lasts for days, I love it." --text "Broke after a week, avoid."
       --text "Not bad at all, though the screen is dim.")
for run in run lora; do
  for d in "$dev" cpu; do
    $bin predict --model "$model" --adapter "$out/$run/adapter" --head "$out/$run/head" \
      --device "$d" --json "${texts[@]}" > "$out/predict-$run-$d.json"
  done
done
$PY - "$out" "$dev" <<'PYEOF' | tee "$out/compare.txt"
import json, sys
out, dev = sys.argv[1], sys.argv[2]
for run in ("run", "lora"):
    a, b = (json.load(open(f"{out}/predict-{run}-{d}.json"))["predictions"] for d in (dev, "cpu"))
    diff = max(abs(x - y) for p, q in zip(a, b) for x, y in zip(p["logits"], q["logits"]))
    same = all(p["label"] == q["label"] for p, q in zip(a, b))
    print(f"{run}: max |logit({dev}) - logit(cpu)| = {diff:.2e}; same labels: {same}")
    assert diff < 1e-3 and same, f"{dev} and cpu disagree"
PYEOF

if [[ -z "${SKIP_BENCH:-}" ]]; then
  log "training benchmark on $dev vs the Python library"
  $PY benchmarks/compare_training.py --device "$dev" --rows 960 --rust-bin "$bin" \
    --json-out "$out/bench-cuda.json" 2>&1 | tee "$out/bench-cuda.txt"
fi
log "done: $out"
