# Shared by the shell tests in tests/run/ (sourced with hyla's path as $1): a work directory
# removed at exit, a small byte dataset, a tiny CPU recipe, and helpers. One thread: a run on the
# CPU is then deterministic, bit for bit.
hyla=$1
work=$(mktemp -d /tmp/hyla-run-test-XXXXXX)
trap 'rm -rf "$work"' EXIT
export HYLA_THREADS=1

fail() {
  echo "FAIL: $*"
  exit 1
}

for i in $(seq 3000); do echo "line $i: the quick brown fox jumps over the lazy dog."; done \
  >"$work/text.txt"
"$hyla" data prepare "$work/text.txt" "$work/data.h5" >/dev/null

# A 2-block gla/attn model of d = 16 on 4 x 32 bytes: about a millisecond a step.
tiny_recipe() { # steps
  cat <<EOF
[run]
seed = 1
[model]
d_model = 16
n_heads = 2
layers = ["gla", "attn"]
[train]
batch = 4
seq_len = 32
steps = $1
log_every = 1
eval_every = 50
eval_batches = 4
checkpoint_every = 5
threads = 1
[optim]
lr = 1e-2
warmup = 5
[data]
dataset = "$work/data.h5"
EOF
}

# Whether process $1 is hyla (not the shell's child before its exec, with the shell's handlers)
# and has a handler for SIGTERM (signal 15: bit 14 of SigCgt in /proc).
catching() {
  local name mask
  name=$(cat "/proc/$1/comm" 2>/dev/null) && [ "$name" = "$(basename "$hyla")" ] || return 1
  mask=$(awk '/^SigCgt:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$mask" ] && (((16#$mask >> 14) & 1))
}

# Milliseconds since the epoch.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# Whether process $1 runs (a child that ended is a zombie until waited for).
running() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [ "$state" != Z ]
}

wait_catching() { # pid
  local i
  for ((i = 0; i < 2000; i++)); do
    catching "$1" && return 0
    running "$1" || fail "process $1 ended before it caught SIGTERM"
    sleep 0.01
  done
  fail "process $1 did not catch SIGTERM within 20 s"
}

# Wait up to 5 s for child $1 to end (then kill it and fail); sets $rc, its exit status, and $took,
# the milliseconds since $start.
wait_end() {
  local i
  for ((i = 0; i < 500; i++)); do
    running "$1" || break
    sleep 0.01
  done
  if running "$1"; then
    kill -KILL "$1"
    wait "$1" || true
    fail "process $1 did not end within 5 s"
  fi
  rc=0
  wait "$1" || rc=$?
  took=$(($(now_ms) - start))
}

# Send signal $1 to child $2 and wait_end.
stop_child() {
  start=$(now_ms)
  kill -"$1" "$2"
  wait_end "$2"
}
