#!/usr/bin/env bash
# Screenshots of each screen from a real window (Xvfb + ImageMagick's `import`) into
# screenshots/, on a fresh demo workspace; the Runs screen shows a demo training in progress.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
cargo build --release -q
bin=$PWD/target/release/adapter-studio
ws=$(mktemp -d)
trap 'rm -rf "$ws"' EXIT

# shot NAME SECONDS ARGS...: start the app with ARGS, wait, capture the screen, close it.
shot() {
  local name=$1 wait=$2
  shift 2
  xvfb-run -a -s "-screen 0 1280x800x24" bash -c '
    "$0" "$@" & pid=$!
    sleep '"$wait"'
    import -window root "'"$PWD"'/screenshots/'"$name"'.png"
    kill $pid; wait $pid 2>/dev/null || true' "$bin" --workspace "$ws" "$@"
  echo "screenshots/$name.png"
}

shot models 6 --screen models
shot datasets 8 --screen datasets
shot train 6 --screen train:method
shot runs 90 --autostart
