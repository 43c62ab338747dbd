#!/usr/bin/env bash
# Sets up (first run: a few minutes, then a ~10 minute release build) and starts Adapter Studio
# on the demo model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release
# The desktop app is not built yet (see the issues); until then this describes the demo model.
exec target/release/adapter-studio info --model demo "$@"
