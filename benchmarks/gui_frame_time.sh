#!/usr/bin/env bash
# Frame time of the desktop app while a training runs: opens a real window under Xvfb on a fresh
# demo workspace, starts the wizard's default run (sentiment, seq_bn on the demo model), logs
# how long each frame's UI code takes (ms), and prints percentiles. Usage:
#   benchmarks/gui_frame_time.sh [SECONDS]      (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
cargo build --release -q
bin=$PWD/target/release/adapter-studio
ws=$(mktemp -d)
log=$ws/frames.txt
trap 'rm -rf "$ws"' EXIT
xvfb-run -a -s "-screen 0 1280x800x24" bash -c '
  "$0" --workspace "$1" --autostart --frame-log "$2" & pid=$!
  sleep '"$secs"'
  kill $pid; wait $pid 2>/dev/null || true' "$bin" "$ws" "$log"
steps=$(find "$ws/runs" -name metrics.jsonl -exec grep -c '"kind":"train"' {} + | tail -1)
python3 - "$log" "$steps" <<'PY'
import sys
ms = sorted(float(l) for l in open(sys.argv[1]) if l.strip())
if not ms:
    sys.exit("no frames were logged")
pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]
print(f"{len(ms)} frames while training ({sys.argv[2]} training steps logged)")
print(f"UI time per frame: median {pick(0.5):.2f} ms, p95 {pick(0.95):.2f} ms, "
      f"p99 {pick(0.99):.2f} ms, max {ms[-1]:.2f} ms; over 16 ms: {sum(m > 16 for m in ms)}")
PY
