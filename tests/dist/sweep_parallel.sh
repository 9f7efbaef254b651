#!/usr/bin/env bash
# A sweep under mpirun -np 2 trains two runs at a time (each rank on its own): every run of the
# grid finishes once, rank 0 writes summary.csv with one row per run, and running the sweep again
# trains nothing. Ranks share the runs out as they go (claim files): no run is trained twice, no
# claim outlives the sweep, and a claim an interrupted sweep left behind does not block its run.
#   sweep_parallel.sh HYLA_BINARY MPIEXEC
set -euo pipefail
hyla=$1
mpiexec=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 HYLA_THREADS=1
cat >"$work/s.toml" <<TOML
[run]
out = "$work/sweep"
[model]
d_model = 16
n_heads = 2
layers = "gla,attn"
[train]
batch = 2
seq_len = 32
steps = 4
eval_every = 0
eval_batches = 1
[data]
dataset = "mqar"
[data.mqar]
pairs = 4
[sweep]
"optim.lr" = [1e-3, 3e-3, 1e-2]
seeds = [0]
TOML
fail=0
"$mpiexec" --oversubscribe -np 2 "$hyla" sweep "$work/s.toml" >"$work/first.out" 2>&1 || {
  echo "FAIL first sweep: exit status $?"
  cat "$work/first.out"
  fail=1
}
if grep -q "^rank 0: .*\] done" "$work/first.out" && grep -q "^rank 1: .*\] done" "$work/first.out"; then
  echo "ok   both ranks trained runs"
else
  echo "FAIL not both ranks trained runs:"
  cat "$work/first.out"
  fail=1
fi
rows=$(($(wc -l <"$work/sweep/summary.csv") - 1))
finished=$(find "$work/sweep" -name result.json | wc -l)
if [ "$rows" = 3 ] && [ "$finished" = 3 ]; then echo "ok   3 runs over 2 ranks, 3 summary rows"; else
  echo "FAIL expected 3 runs and 3 summary rows, got $finished runs and $rows rows"
  fail=1
fi
"$mpiexec" --oversubscribe -np 2 "$hyla" sweep "$work/s.toml" >"$work/second.out" 2>&1 || {
  echo "FAIL second sweep: exit status $?"
  fail=1
}
skipped=$(grep -c "skip" "$work/second.out" || true)
if [ "$skipped" -ge 1 ] && ! grep -q " done" "$work/second.out"; then
  echo "ok   the sweep run again skips every finished run"
else
  echo "FAIL the second sweep trained again:"
  cat "$work/second.out"
  fail=1
fi
claims=$(find "$work/sweep" -name .sweep-claim | wc -l)
if [ "$claims" = 0 ]; then echo "ok   no claim file left after the sweeps"; else
  echo "FAIL $claims claim files left after the sweeps"
  fail=1
fi
# An interrupted launch: one run unfinished, its claim still there.
redo=$(dirname "$(find "$work/sweep" -name result.json | sort | head -1)")
rm "$redo/result.json"
touch "$redo/.sweep-claim"
"$mpiexec" --oversubscribe -np 2 "$hyla" sweep "$work/s.toml" >"$work/third.out" 2>&1 || {
  echo "FAIL third sweep: exit status $?"
  fail=1
}
trained=$(grep -c "\] done" "$work/third.out" || true)
if [ "$trained" = 1 ] && [ -f "$redo/result.json" ]; then
  echo "ok   a stale claim is cleared and its unfinished run trained once"
else
  echo "FAIL expected the unfinished run trained once, got $trained:"
  cat "$work/third.out"
  fail=1
fi
exit $fail
