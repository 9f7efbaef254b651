#!/usr/bin/env bash
# A run that aborts inside `hyla sweep` (here HYLA_CHECK_FINITE's abort on a diverged run; on a
# GPU, running out of its memory) leaves its reason in the run's error.txt, so that the summary
# of the next sweep shows it as failed and why; that sweep skips the finished run and trains the
# failed one again (which now fails as a diverged run, without an abort).
#   sweep_abort.sh HYLA_BINARY
set -uo pipefail
source "$(dirname "$0")/common.sh"

tiny_dataset
cat >"$work/sweep.toml" <<TOML
[run]
out = "$work/sweep"
[model]
d_model = 16
n_heads = 2
layers = "attn"
[train]
batch = 2
seq_len = 16
steps = 6
eval_every = 0
eval_batches = 1
checkpoint_every = 0
[optim]
warmup = 0
[data]
dataset = "$work/data.h5"
[sweep]
"optim.lr" = [1e-3, 1e30]
seeds = [0]
TOML
rc=0
HYLA_CHECK_FINITE=1 timeout 120 "$hyla" sweep "$work/sweep.toml" >"$work/out.txt" 2>&1 || rc=$?
[ "$rc" = 134 ] || { echo "FAIL: the diverging sweep exited $rc, expected 134 (abort)"; status=1; }
error="$work/sweep/lr=1e30,seed=0/error.txt"
if ! grep -q "check_finite: .*(the process aborted)" "$error" 2>/dev/null; then
  echo "FAIL: no abort in $error; the sweep printed:"; head -c 2000 "$work/out.txt"; status=1
fi
[ ! -e "$work/sweep/lr=1e-3,seed=0/error.txt" ] || { echo "FAIL: the finished run has an error.txt"; status=1; }
expect 1 "0 trained, 0 resumed, 1 skipped, 1 failed" sweep "$work/sweep.toml"
grep -q "training diverged" "$error" || { echo "FAIL: the retried run's error.txt: $(cat "$error")"; status=1; }
exit $status
