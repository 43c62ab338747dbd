#!/usr/bin/env bash
# Sets up (including the Python reference library) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
cargo test --no-fail-fast "$@"
