#!/usr/bin/env bash
# Screenshots of the app's From the Hub sections (screenshots/hub-models.png,
# screenshots/hub-adapters.png): the app searches a local Hub stand-in
# (tests/reference/fake_hub.py) serving a tiny model and two adapters with AdapterHub cards.
# BIN: the binary to run (default: the release build).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-$PWD/target/release/adapter-studio}
tmp=$(mktemp -d)
hub_pid=
cleanup() { [[ -n $hub_pid ]] && kill "$hub_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
card='---
library_name: adapter-transformers
tags:
- adapter-transformers
- adapters
- bert
---
# An adapter for review ratings
'
mkdir -p "$tmp/repos"
cp -r tests/fixtures/bert_tiny "$tmp/repos/model"
for a in a b; do
  mkdir -p "$tmp/repos/$a"
  cp tests/fixtures/bert_tiny_adapters/$a/* tests/fixtures/bert_tiny_adapters/head_cls/* "$tmp/repos/$a/"
  printf '%s' "$card" > "$tmp/repos/$a/README.md"
done
cat > "$tmp/hub.json" <<JSON
{"repos": {
  "studio-demo/review-base-tiny": {"revisions": {"main": "$tmp/repos/model"}},
  "studio-demo/review-rating-seq-bn": {"revisions": {"main": "$tmp/repos/a"}},
  "studio-demo/review-sentiment-seq-bn": {"revisions": {"main": "$tmp/repos/b"}}
}, "log": "$tmp/requests.log"}
JSON
.venv/bin/python tests/reference/fake_hub.py "$tmp/hub.json" > "$tmp/port" &
hub_pid=$!
for _ in $(seq 50); do [[ -s $tmp/port ]] && break; sleep 0.1; done
export HF_ENDPOINT="http://127.0.0.1:$(head -1 "$tmp/port")" HF_HOME="$tmp/hf-home"
# Each screen also shows one repo's Details (its card and files with sizes).
declare -A details=([models]=studio-demo/review-base-tiny [adapters]=studio-demo/review-rating-seq-bn)
for screen in models adapters; do
  xvfb-run -a -s "-screen 0 1280x800x24" bash -c '
    "$0" --workspace "$1" --screen "$2" --hub-query review --hub-details "$4" & pid=$!
    sleep 12
    import -window root "$3"
    kill $pid; wait $pid 2>/dev/null || true' "$bin" "$tmp/ws" "$screen" "$PWD/screenshots/hub-$screen.png" "${details[$screen]}"
  echo "screenshots/hub-$screen.png"
done
