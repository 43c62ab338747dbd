#!/usr/bin/env bash
# Builds, on this machine, the release binary that scripts/gpu-check.sh runs on the GPU
# machine, and gathers what that machine lacks into .gpu/ (carried there by the device tool).
#
# The GPU machine has no network, no Rust and no GTK, and its PyTorch is 2.11 (CUDA 13): the
# binary is built against PyPI's torch 2.11 wheel with tch 0.24 (tch 0.26, ours, expects
# libtorch 2.13), without GTK (rfd's portal backend), and finds the machine's own libtorch
# through LD_LIBRARY_PATH. The CUDA libraries libtorch_cuda needs are not here: the linker is
# told to leave them to run time.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
torch_dir=target/gpu-torch
src=target/gpu-src
log() { printf '\033[1m[gpu-build]\033[0m %s\n' "$*"; }

if [[ ! -d $torch_dir/torch/lib ]]; then
  log "PyPI torch 2.11.0 wheel (headers and libraries only)"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 -d "$torch_dir" torch==2.11.0
  (cd "$torch_dir" && python3 -m zipfile -e torch-2.11.0-*.whl . >/dev/null)
fi

log "crate copy with tch 0.24 and no GTK"
rm -rf "$src"
mkdir -p "$src"
cp -r Cargo.toml Cargo.lock build.rs src assets "$src"/
sed -i -e 's/^tch = "0.26"/tch = "0.24"/' -e 's/^torch-sys = "0.26"/torch-sys = "0.24"/' \
  -e 's/^rfd = .*/rfd = { version = "0.15", default-features = false, features = ["xdg-portal", "async-std"] }/' \
  "$src/Cargo.toml"

log "release build against torch 2.11 (about 15 minutes on 2 cores)"
(cd "$src" && LIBTORCH="$root/$torch_dir/torch" LIBTORCH_CXX11_ABI=1 \
  CARGO_TARGET_DIR="$root/target/gpu-build" \
  RUSTFLAGS="-C link-arg=-Wl,--allow-shlib-undefined" \
  CARGO_PROFILE_RELEASE_DEBUG=false \
  cargo build --release --bin adapter-studio 2>&1 | tail -3)

mkdir -p .gpu
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '/.gpu/' >> .git/info/exclude; }
strip -o .gpu/adapter-studio target/gpu-build/release/adapter-studio
log "needs: $(readelf -d .gpu/adapter-studio | grep NEEDED | sed 's/.*\[\(.*\)\]/\1/' | tr '\n' ' ')"
# The demo model's tokenizer and config: the GPU check makes random weights of its shape there.
mkdir -p .gpu/demo-model
for f in config.json tokenizer.json tokenizer_config.json special_tokens_map.json vocab.txt; do
  [[ -f .venv/demo-model/$f ]] && cp ".venv/demo-model/$f" .gpu/demo-model/
done
du -sh .gpu
