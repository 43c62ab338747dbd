#!/usr/bin/env bash
# Long fuzzing of every reader of user files (tests/fuzz.rs): the same targets as the test
# command, each for longer. Usage: scripts/fuzz-long.sh [TOTAL_MINUTES]   (default 30)
# The minutes are shared among the targets; a panic stops the run and leaves the input in
# $TMPDIR/fuzz-crash-TARGET (add it to tests/fuzz_corpus/ once fixed). Optimised build: more
# inputs per second than the test command's debug build.
set -euo pipefail
cd "$(dirname "$0")/.."
total_min=${1:-30}
# The budget is per reader (a test may fuzz several: one per data format, …): count them with
# a 1 ms run, which prints `fuzz NAME: N inputs` once per reader.
targets=$(FUZZ_BUDGET_MS=1 cargo test --release --test integration -- fuzz::fuzz_ --test-threads 1 --nocapture 2>&1 | grep -oE 'fuzz [^ ]+: [0-9]+ inputs' | wc -l)
per_target_ms=$(( total_min * 60 * 1000 / targets ))
echo "fuzzing $targets readers, $((per_target_ms / 1000)) s each"
# One target at a time: each gets both cores' worth of wall time.
FUZZ_BUDGET_MS=$per_target_ms cargo test --release --test integration -- fuzz::fuzz_ --test-threads 1 --nocapture 2>&1 \
  | grep -E '^fuzz |panicked|test result'
