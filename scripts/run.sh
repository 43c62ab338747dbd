#!/usr/bin/env bash
# Sets up (first run: a few minutes, then a ~10 minute release build) and opens Adapter Studio
# on the demo workspace (the demo model and datasets, in the user's data folder); extra
# arguments go to the app, e.g. `--workspace DIR`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release
exec target/release/adapter-studio "$@"
