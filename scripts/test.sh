#!/usr/bin/env bash
# Sets up (including the Python reference library) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
# The library and the CLI build without the desktop app (no eframe/egui/rfd/GTK): the layering
# the `gui` feature promises, checked on every run.
cargo build --no-default-features --bin adapter-studio
cargo test --no-fail-fast "$@"
