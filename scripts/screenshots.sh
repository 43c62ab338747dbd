#!/usr/bin/env bash
# Screenshots of each screen from a real window (Xvfb + ImageMagick's `import`) into
# screenshots/, on a fresh demo workspace; the Runs screen shows a demo training in progress.
# For the composer, the inspector and the playground, three short stage-1 runs and a stage-2
# fusion on the target task are trained first from the command line (a few minutes on CPU).
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

# Stage 1 on three demo tasks, stage 2 on the small target task, in place of the run the Runs
# shot started: short runs with raised learning rates (pictures, not the paper's settings).
rm -rf "$ws/runs"
data=$PWD/assets/datasets
quick=(--model demo --device cpu --batch-size 16 --max-length 64 --json)
"$bin" train "${quick[@]}" --train "$data/sentiment/train.csv" --validation "$data/sentiment/validation.csv" \
  --name sentiment --max-steps 150 --lr 1e-3 --out "$ws/runs/sentiment" >/dev/null
"$bin" train "${quick[@]}" --train "$data/topic/train.jsonl" --validation "$data/topic/validation.jsonl" \
  --name topic --max-steps 150 --lr 1e-3 --out "$ws/runs/topic" >/dev/null
"$bin" train "${quick[@]}" --train "$data/nli/train.tsv" --validation "$data/nli/validation.tsv" \
  --name nli --max-steps 150 --lr 1e-3 --out "$ws/runs/nli" >/dev/null
"$bin" fuse "${quick[@]}" --adapter "$ws/runs/sentiment/adapter" --adapter "$ws/runs/topic/adapter" \
  --adapter "$ws/runs/nli/adapter" --train "$data/review_rating/train.csv" \
  --validation "$data/review_rating/validation.csv" --name review_rating-fusion --epochs 12 \
  --eval-every 7 --lr 3e-3 --out "$ws/runs/review_rating-fusion" >/dev/null
example="the staff were friendly but the room was small and noisy"
shot composer 8 --screen adapters:compose
shot inspector 15 --screen "inspect:$example"
shot playground 20 --screen "playground:$example"
