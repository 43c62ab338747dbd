#!/usr/bin/env bash
# Prepares, on this machine, what scripts/gpu-check.sh needs on the device tool's GPU machine,
# in .gpu/ (git-ignored through .git/info/exclude; the device call carries it):
#   .gpu/adapter-studio.xz   the release binary, built for that machine
#   .gpu/whl/                wheels of the Python library side of the benchmark (adapters 1.3.0
#                            needs transformers ~=4.57, which needs huggingface_hub <1.0 and
#                            tokenizers <0.23; the machine has transformers 5, hub 1, tokenizers
#                            0.23); .gpu/whl/opt/: requests & co., installed there only if absent
#   .gpu/demo-model/         the demo model's config and tokenizer, without its 90 MB of weights
#                            (too big to carry): gpu-check.sh makes random weights of its shape
#
# The GPU machine has no network, no Rust and no GTK, and its PyTorch is 2.11 (CUDA 13.0). So the
# binary is built from a copy of the crate in target/gpu-src where Cargo.toml says tch/torch-sys
# 0.24 (the versions for libtorch 2.11; ours, 0.26, expects 2.13) and rfd uses the XDG portal
# (D-Bus) instead of GTK; it links against PyPI's torch 2.11.0 wheel (target/gpu-torch) and finds
# the machine's own torch through LD_LIBRARY_PATH. The CUDA libraries that libtorch_cuda.so
# needs are not on this machine: the linker leaves them to run time (--allow-shlib-undefined).
#
# About 20 minutes the first time on 2 cores (a 530 MB download, a full release build);
# afterwards incremental. Nothing outside target/gpu-* and .gpu/ is written.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
torch_dir=target/gpu-torch
src=target/gpu-src
log() { printf '\033[1m[gpu-build]\033[0m %s\n' "$*"; }
pip_download() {  # wheels for CPython 3.12 on manylinux x86-64, whatever this Python is
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 "$@"
}

# --- libtorch 2.11 from PyPI's torch wheel (the machine's torch is 2.11.0+cu130) ----------------
if [[ ! -f $torch_dir/torch/lib/libtorch_cpu.so ]]; then
  log "PyPI torch 2.11.0 wheel (530 MB; headers, libraries and cmake files unpacked)"
  mkdir -p "$torch_dir"
  ls "$torch_dir"/torch-2.11.0-*.whl >/dev/null 2>&1 || pip_download -d "$torch_dir" torch==2.11.0
  (cd "$torch_dir" && unzip -q -o torch-2.11.0-*.whl 'torch/include/*' 'torch/lib/*' 'torch/share/*')
fi

# --- the crate, with tch 0.24 and without GTK ----------------------------------------------------
log "crate copy in $src: tch/torch-sys 0.24, rfd without GTK"
# Only files whose content changed are rewritten: cargo then rebuilds only what it must.
sync_file() { cmp -s "$1" "$2" || { mkdir -p "$(dirname "$2")"; cp "$1" "$2"; }; }
sync_dir() {
  local f
  while IFS= read -r f; do sync_file "$1/$f" "$2/$f"; done < <(cd "$1" && find . -type f)
  [[ -d $2 ]] || return 0
  while IFS= read -r f; do [[ -e $1/$f ]] || rm -f "$2/$f"; done < <(cd "$2" && find . -type f)
}
mkdir -p "$src"
sync_dir src "$src/src"
sync_dir assets "$src/assets"
sync_file build.rs "$src/build.rs"
# Cargo.lock: the copy's own (moved to tch 0.24 by cargo) unless ours changed since.
[[ -f $src/Cargo.lock && $src/Cargo.lock -nt Cargo.lock ]] || cp Cargo.lock "$src"/
sed -e 's/^tch = "0\.26"/tch = "0.24"/' -e 's/^torch-sys = "0\.26"/torch-sys = "0.24"/' \
  -e 's/^rfd = .*/rfd = { version = "0.15", default-features = false, features = ["xdg-portal", "async-std"] }/' \
  Cargo.toml > "$src/Cargo.toml.new"
grep -q '^tch = "0.24"' "$src/Cargo.toml.new" && grep -q '^torch-sys = "0.24"' "$src/Cargo.toml.new" &&
  grep -q '^rfd = .*xdg-portal' "$src/Cargo.toml.new" ||
  { echo "gpu-build: Cargo.toml's tch/torch-sys/rfd lines changed: update the sed above" >&2; exit 1; }
sync_file "$src/Cargo.toml.new" "$src/Cargo.toml" && rm "$src/Cargo.toml.new"

log "release build against torch 2.11 (a first build: about 20 minutes on 2 cores)"
if ! (cd "$src" && LIBTORCH="$root/$torch_dir/torch" LIBTORCH_CXX11_ABI=1 \
      CARGO_TARGET_DIR="$root/target/gpu-build" \
      RUSTFLAGS="-C link-arg=-Wl,--allow-shlib-undefined" \
      CARGO_PROFILE_RELEASE_DEBUG=false \
      nice -n 10 cargo build --release --bin adapter-studio) > target/gpu-build.log 2>&1; then
  grep -E '^error' -A15 target/gpu-build.log | head -150
  echo "gpu-build: the build failed (target/gpu-build.log)" >&2
  exit 1
fi
tail -1 target/gpu-build.log
exe=target/gpu-build/release/adapter-studio

# Only glibc, the C++ runtime and torch's own libraries: no GTK, GLib or X11 at link time.
needed=$(readelf -d "$exe" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
log "needs: $needed"
for lib in $needed; do
  case $lib in
    libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|libutil.so.*|libgcc_s.so.*|\
    libstdc++.so.*|ld-linux-x86-64.so.*|libtorch*.so|libc10*.so) ;;
    *) echo "gpu-build: the binary needs $lib, which the GPU machine may lack" >&2; exit 1 ;;
  esac
done

mkdir -p .gpu
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '/.gpu/' >> .git/info/exclude; }
mkdir -p target/gpu-bin
strip -o target/gpu-bin/adapter-studio "$exe"
xz -T0 -6 -c target/gpu-bin/adapter-studio > .gpu/adapter-studio.xz
log "binary: $(du -h target/gpu-bin/adapter-studio | cut -f1) stripped, $(du -h .gpu/adapter-studio.xz | cut -f1) as .gpu/adapter-studio.xz"

# A smoke test here where the project's .venv has CUDA 13 libraries for libtorch_cuda.so to load.
nv=$(ls -d "$root"/.venv/lib/python3*/site-packages/nvidia/*/lib 2>/dev/null | tr '\n' ':')
if [[ -n $nv ]]; then
  LD_LIBRARY_PATH="$root/$torch_dir/torch/lib:$nv" target/gpu-bin/adapter-studio --version
fi

# --- the Python library side of the benchmark ---------------------------------------------------
# The versions of the project's reference environment (tests/reference/requirements.txt).
log "wheels"
wheels=(adapters==1.3.0 transformers==4.57.6 tokenizers==0.22.2 huggingface_hub==0.36.2)
# transformers 4.57 and huggingface_hub 0.x import requests (hub 1.x uses httpx instead).
opt=(requests==2.34.2 urllib3==2.8.0 idna==3.20 charset_normalizer==3.5.3 certifi==2026.10.19.post1)
mkdir -p target/gpu-whl
(cd target/gpu-whl && pip_download -d . "${wheels[@]}" "${opt[@]}")
rm -rf .gpu/whl && mkdir -p .gpu/whl/opt
for w in "${wheels[@]}"; do cp target/gpu-whl/"${w%%==*}-${w##*==}"-*.whl .gpu/whl/; done
for w in "${opt[@]}"; do cp target/gpu-whl/"${w%%==*}-${w##*==}"-*.whl .gpu/whl/opt/; done

# --- the demo model's config and tokenizer -------------------------------------------------------
[[ -f .venv/demo-model/config.json ]] || { echo "gpu-build: no .venv/demo-model: run scripts/setup.sh" >&2; exit 1; }
rm -rf .gpu/demo-model && mkdir -p .gpu/demo-model
for f in config.json tokenizer.json tokenizer_config.json special_tokens_map.json vocab.txt; do
  [[ -f .venv/demo-model/$f ]] && cp ".venv/demo-model/$f" .gpu/demo-model/
done
rm -rf .gpu/bin .gpu/adapter-studio  # earlier layouts
log "ready: $(du -sh .gpu | cut -f1) in .gpu; then, on the device, carrying .gpu: bash scripts/gpu-check.sh"
