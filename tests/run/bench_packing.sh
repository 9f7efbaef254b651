#!/usr/bin/env bash
# scripts/bench_packing.sh on tiny rows: both packings train and the table has its row and ratio.
# Its numbers are not checked: a bench, not a test.
#   tests/run/bench_packing.sh HYLA
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HYLA_THREADS=1
out=$("$root/scripts/bench_packing.sh" --hyla "$1" --steps 6 --rows 4x64 --out "$work" 2>&1)
if ! grep -qE '^\| 4 x 64 \| [0-9]+ \| [0-9]+ \| [0-9.]+ \|$' <<<"$out"; then
  echo "FAIL: no '4 x 64' row with two numbers and a ratio in:"
  echo "$out"
  exit 1
fi
