#!/usr/bin/env bash
# One brief fuzz run, as ctest runs it (docs/testing.md): TARGET mutates RUNS inputs from its
# committed corpus with a fixed seed, so that a run repeats (RUNS = 0 replays the corpus alone).
# New inputs go to a scratch folder, removed after; a crash, a hang, a leak or a sanitizer report
# leaves its input in ARTIFACTS and fails.
#   run.sh TARGET CORPUS RUNS ARTIFACTS
set -euo pipefail
target=$1
corpus=$2
runs=$3
artifacts=$4
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$artifacts"
"$target" -seed=1 -runs="$runs" -max_total_time=60 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$artifacts/$(basename "$target")-" "$scratch" "$corpus"
