#!/usr/bin/env bash
# Screenshots of each screen from a real window (Xvfb + ImageMagick's `import`) into
# screenshots/, on a fresh demo workspace; the Runs screen shows a demo training in progress.
# For the composer, the inspector and the playground, the default flow is trained first from
# the command line: two stage-1 adapters and a stage-2 fusion on the target task, every setting
# at its default (the wizard's), as a new user would.
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

shot welcome 6 --screen welcome
shot models 6 --screen models
shot datasets 8 --screen datasets
shot train 6 --screen train:method
shot review 12 --screen train:review
shot runs 90 --autostart

# The default flow, as the wizard runs it: two demo adapters with the wizard's (= the CLI's)
# default settings, then a fusion of them on the small target task with the default fusion
# settings (about 15 minutes on 2 CPU cores). The heatmap check below is the fusion issue's
# criterion: some layer's mean weights differ across adapters by at least 0.1.
rm -rf "$ws/runs"
data=$PWD/assets/datasets
defaults=(--model demo --device cpu --json)
"$bin" train "${defaults[@]}" --train "$data/sentiment/train.csv" --validation "$data/sentiment/validation.csv" \
  --name sentiment --out "$ws/runs/sentiment" >/dev/null
"$bin" train "${defaults[@]}" --train "$data/topic/train.jsonl" --validation "$data/topic/validation.jsonl" \
  --name topic --out "$ws/runs/topic" >/dev/null
"$bin" fuse "${defaults[@]}" --adapter "$ws/runs/sentiment/adapter" --adapter "$ws/runs/topic/adapter" \
  --train "$data/review_rating/train.csv" --validation "$data/review_rating/validation.csv" \
  --name review_rating-fusion --out "$ws/runs/review_rating-fusion" >/dev/null
.venv/bin/python - "$ws/runs/review_rating-fusion/attention.jsonl" <<'PY'
import json, sys
records = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
best = max(records[-1]["spread"])
print(f"heatmap: {len(records)} evaluations; last: largest per-layer spread {best:.3f}, "
      f"entropy by layer {[round(e, 3) for e in records[-1]['entropy']]}")
sys.exit(0 if best >= 0.1 else 1)
PY
example="the staff were friendly but the room was small and noisy"
shot composer 8 --screen adapters:compose
shot inspector 15 --screen "inspect:$example"
shot playground 20 --screen "playground:$example"

# The Studies screen on a short version of the demo study (2 seeds, 2 epochs; the README's
# report and its figure come from the full one: `study run assets/studies/demo.json` and
# `study report DIR --figure screenshots/demo-study.png`).
.venv/bin/python - "$PWD/assets/studies/demo.json" "$ws/demo-short.json" <<'PY'
import json, os, sys
src, dst = sys.argv[1], sys.argv[2]
spec = json.load(open(src))
base = os.path.dirname(src)
for t in spec["sources"] + spec["targets"]:
    for k in ("train", "validation", "test"):
        if k in t:
            t[k] = os.path.normpath(os.path.join(base, t[k]))
spec["seeds"] = [1, 2]
spec["settings"]["epochs"] = 2
json.dump(spec, open(dst, "w"), indent=1)
PY
"$bin" study run "$ws/demo-short.json" --out "$ws/studies/demo" >/dev/null 2>&1
shot studies 10 --screen studies:demo
