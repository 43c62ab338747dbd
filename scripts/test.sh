#!/usr/bin/env bash
# Sets up (including the Python reference library) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
# The library and the CLI build without the desktop app (no eframe/egui/rfd/GTK): the layering
# the `gui` feature promises, checked on every run.
cargo build --no-default-features --bin adapter-studio
# Test binaries run two tests at once, and many tests start trainings or Python: with
# libtorch's default of one thread per core, two such processes on 2 cores spin against each
# other (two 20-step trainings side by side: 85 s; with one thread each: 28 s).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
cargo test --no-fail-fast "$@"
