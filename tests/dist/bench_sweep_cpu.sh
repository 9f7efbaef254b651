#!/usr/bin/env bash
# scripts/bench_sweep.sh on 1 and 2 CPU ranks with the tiny hybrid: both rows have their numbers
# and the second its ratio to one run alone. Its numbers are not checked: a bench, not a test.
#   tests/dist/bench_sweep_cpu.sh HYLA
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=$("$root/scripts/bench_sweep.sh" --device cpu --ranks 1,2 --steps 4 --hyla "$1" \
  --recipe "$root/recipes/hybrid-3to1-tiny.toml" --out "$work" 2>&1)
status=0
for n in 1 2; do
  if ! grep -qE "^\| $n \| [0-9]+ \| [0-9]+ \| [0-9.]+x \| [0-9.]+ \|$" <<<"$out"; then
    echo "FAIL: no row of $n runs at once with its numbers"
    status=1
  fi
done
[ $status = 0 ] || { echo "$out"; tail -20 "$work"/np*/sweep.log; }
exit $status
