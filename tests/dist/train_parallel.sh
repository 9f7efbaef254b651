#!/usr/bin/env bash
# Ten training steps of a small hybrid (gla + attn) under mpirun equal one process on the same
# global batch: sequence parallel sp = 2, data parallel dp = 2, and dp = 2 x sp = 2 (f32: each
# loss within 1e-5 relative). A bad grid fails fast on every rank, with one message.
#   train_parallel.sh HYLA_BINARY MPIEXEC
set -euo pipefail
hyla=$1
mpiexec=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 HYLA_THREADS=1
cat >"$work/r.toml" <<TOML
[model]
d_model = 32
n_heads = 2
layers = ["gla", "attn", "lightning", "linear"]
[train]
batch = 4
seq_len = 64
steps = 10
log_every = 1
eval_every = 0
eval_batches = 2
[optim]
warmup = 2
TOML
run() { # name ranks settings...
  local name=$1 ranks=$2
  shift 2
  local sets=()
  for s in "$@"; do sets+=(--set "$s"); done
  "$mpiexec" --oversubscribe -np "$ranks" "$hyla" train "$work/r.toml" --quiet \
    --set "run.out=\"$work/$name\"" "${sets[@]}"
  grep -o '"loss":[-0-9.e]*' "$work/$name/metrics.jsonl" | cut -d: -f2 >"$work/$name.loss"
}
run one 1
run sp2 2 dist.sp=2
run dp2 2 dist.dp=2 train.batch=2
run dp2sp2 4 dist.dp=2 dist.sp=2 train.batch=2
fail=0
for name in sp2 dp2 dp2sp2; do
  if paste "$work/one.loss" "$work/$name.loss" |
    awk -v n="$name" '{ d = $1 - $2; if (d < 0) d = -d; r = d / ($1 < 0 ? -$1 : $1);
      if (r > 1e-5) { printf "FAIL %s step %d: %s vs %s\n", n, NR, $1, $2; bad = 1 } }
      END { if (NR != 10) { printf "FAIL %s: %d losses\n", n, NR; bad = 1 } exit bad }'; then
    echo "ok   $name: 10 losses equal one process's within 1e-5"
  else
    fail=1
  fi
done
# A grid that does not match the ranks: non-zero exit, the message once.
if "$mpiexec" --oversubscribe -np 3 "$hyla" train "$work/r.toml" --quiet --set dist.sp=2 \
  >"$work/bad.out" 2>&1; then
  echo "FAIL bad grid: exit status 0"
  fail=1
fi
count=$(grep -c "dp = 1 x sp = 2 = 2 ranks, but 3 processes are running" "$work/bad.out" || true)
if [ "$count" = 1 ]; then echo "ok   bad grid: one message, non-zero exit"; else
  echo "FAIL bad grid: the message appeared $count times"
  fail=1
fi
exit $fail
