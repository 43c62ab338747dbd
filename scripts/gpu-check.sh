#!/usr/bin/env bash
# The CUDA check, for a machine with an NVIDIA GPU (about 10 minutes): setup, release build, a
# short training on the GPU, the trained adapter's predictions on GPU vs CPU, and the GPU
# training benchmark against the Python library. Results go to ${OUT:-target/gpu-check}.
#
#   scripts/gpu-check.sh            everything
#   SKIP_BENCH=1 scripts/gpu-check.sh   without the benchmark
#   DEVICE=cpu SKIP_BENCH=1 BIN=target/debug/adapter-studio scripts/gpu-check.sh
#                                   a dry run of the steps on a machine without a GPU
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-target/gpu-check}
dev=${DEVICE:-cuda}
mkdir -p "$out"
log() { printf '\033[1m[gpu-check]\033[0m %s\n' "$*"; }

scripts/setup.sh --test
PY=.venv/bin/python
$PY - "$dev" <<'PYEOF' | tee "$out/torch.txt"
import sys, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if sys.argv[1] == "cpu":
    sys.exit(0)
assert torch.cuda.is_available(), "torch sees no GPU"
print(torch.cuda.get_device_name(0))
PYEOF

bin=${BIN:-target/release/adapter-studio}
if [[ -z "${BIN:-}" ]]; then
  log "release build"
  cargo build --release 2>&1 | tail -2
fi

log "a short training on $dev"
rm -rf "$out/run"
$bin train --model demo --train assets/datasets/sentiment/train.csv \
  --validation assets/datasets/sentiment/validation.csv --max-steps 60 --max-length 64 \
  --device "$dev" --out "$out/run" --json | tee "$out/train.json"
$PY -c "import json,sys; d=json.load(open(sys.argv[1]))['device']; print('trained on', d); \
assert d.startswith(sys.argv[2]), 'not trained on ' + sys.argv[2]" "$out/run/run.json" "$dev"

log "predictions: $dev vs cpu"
texts=(--text "The battery lasts for days, I love it." --text "Broke after a week, avoid."
       --text "Not bad at all, though the screen is dim.")
for d in "$dev" cpu; do
  $bin predict --model demo --adapter "$out/run/adapter" --head "$out/run/head" --device "$d" \
    --json "${texts[@]}" > "$out/predict-$d.json"
done
$PY - "$out" "$dev" <<'PYEOF'
import json, sys
out, dev = sys.argv[1], sys.argv[2]
a, b = (json.load(open(f"{out}/predict-{d}.json"))["predictions"] for d in (dev, "cpu"))
diff = max(abs(x - y) for p, q in zip(a, b) for x, y in zip(p["logits"], q["logits"]))
same = all(p["label"] == q["label"] for p, q in zip(a, b))
print(f"max |logit({dev}) - logit(cpu)| = {diff:.2e}; same labels: {same}")
assert diff < 1e-3 and same, f"{dev} and cpu disagree"
PYEOF

if [[ -z "${SKIP_BENCH:-}" ]]; then
  log "training benchmark on $dev vs the Python library"
  $PY benchmarks/compare_training.py --device "$dev" --rows 960 --rust-bin "$bin" \
    --json-out "$out/bench-cuda.json" | tee "$out/bench-cuda.txt"
fi
log "done: $out"
