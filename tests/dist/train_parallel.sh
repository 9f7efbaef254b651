#!/usr/bin/env bash
# Ten training steps of a small hybrid (gla + attn) under mpirun equal one process on the same
# global batch: sequence parallel sp = 2, data parallel dp = 2, and dp = 2 x sp = 2 (f32: each
# loss within 1e-5 relative); sp = 2 also with LASP-2's collectives not overlapped
# (dist.overlap = false) and with every collective timed (dist.collectives = "timed"). A bad grid
# fails fast on every rank, with one message.
# With DEVICE = cuda the runs train on GPUs, one per rank, their collectives over NCCL, against
# one process on one GPU: sp = 2 and dp = 2 where 2 GPUs are visible, dp = 2 x sp = 2 where 4 are;
# fewer than 2 GPUs skip (and fail under HYLA_REQUIRE_GPU when there is none).
#   train_parallel.sh HYLA_BINARY MPIEXEC [DEVICE]
set -euo pipefail
hyla=$1
mpiexec=$2
device=${3:-cpu}
gpus=0
if [ "$device" = cuda ]; then
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  if [ "$gpus" -lt 2 ]; then
    echo "skip: the NCCL runs need 2 GPUs and $gpus are visible"
    if [ "$gpus" = 0 ] && [ -n "${HYLA_REQUIRE_GPU:-}" ]; then echo "FAIL: HYLA_REQUIRE_GPU is set"; exit 1; fi
    exit 0
  fi
fi
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
if [ "$device" = cuda ]; then sed -i 's/^\[train\]$/[train]\ndevice = "cuda"/' "$work/r.toml"; fi
run() { # name ranks settings...
  local name=$1 ranks=$2
  shift 2
  local sets=()
  for s in "$@"; do sets+=(--set "$s"); done
  "$mpiexec" --oversubscribe -np "$ranks" "$hyla" train "$work/r.toml" --quiet \
    --set "run.out=\"$work/$name\"" "${sets[@]}"
  grep -o '"loss":[-0-9.e]*' "$work/$name/metrics.jsonl" | cut -d: -f2 >"$work/$name.loss"
}
runs="sp2 sp2serial sp2timed dp2"
if [ "$device" = cpu ] || [ "$gpus" -ge 4 ]; then runs="$runs dp2sp2"; fi
run one 1
run sp2 2 dist.sp=2
run sp2serial 2 dist.sp=2 dist.overlap=false
run sp2timed 2 dist.sp=2 'dist.collectives="timed"'
run dp2 2 dist.dp=2 train.batch=2
case " $runs " in *" dp2sp2 "*) run dp2sp2 4 dist.dp=2 dist.sp=2 train.batch=2 ;; esac
fail=0
for name in $runs; do
  if paste "$work/one.loss" "$work/$name.loss" |
    awk -v n="$name" '{ d = $1 - $2; if (d < 0) d = -d; r = d / ($1 < 0 ? -$1 : $1);
      if (r > 1e-5) { printf "FAIL %s step %d: %s vs %s\n", n, NR, $1, $2; bad = 1 } }
      END { if (NR != 10) { printf "FAIL %s: %d losses\n", n, NR; bad = 1 } exit bad }'; then
    echo "ok   $name: 10 losses equal one process's within 1e-5"
  else
    fail=1
  fi
done
[ "$device" = cpu ] || exit $fail
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
