#!/usr/bin/env bash
# A training run killed with SIGKILL at 10 random moments and resumed with --resume each time ends
# as an uninterrupted run does: every step's loss to the last bit (%.17g), every validation loss
# as logged, and the state in its last checkpoint (two more steps from each give the same losses). Then SIGTERM in
# the middle of an evaluation: the run stops within 2 s with a checkpoint, and resuming it ends as
# the uninterrupted run does.
#   tests/run/kill_resume.sh HYLA   (HYLA_KILL_SEED=S: the moments of seed S, default 1; =random)
set -euo pipefail
source "$(dirname "$0")/common.sh"

steps=200
tiny_recipe $steps >"$work/tiny.toml"
train() { # run-name options...
  local name=$1
  shift
  "$hyla" train "$work/tiny.toml" --quiet --set "run.out=\"$work/$name\"" "$@"
}
# The same in the background, its process id in $pid (the process itself, not a subshell).
launch() { # run-name options...
  local name=$1
  shift
  "$hyla" train "$work/tiny.toml" --quiet --set "run.out=\"$work/$name\"" "$@" &
  pid=$!
}
# A run's metrics without the timings (tokens/s, MFU, elapsed seconds).
metrics() { sed -E 's/,"tokens_per_s":.*\}$/}/' "$work/$1/metrics.jsonl"; }
# The step of a run's newest checkpoint (ckpt-*.h5.tmp, a torn write, is no checkpoint), or 0.
checkpointed() {
  local newest
  newest=$(ls "$work/$1"/ckpt-*.h5 2>/dev/null | tail -n 1)
  [[ $newest =~ ckpt-0*([0-9]+)\.h5$ ]] && echo "${BASH_REMATCH[1]}" || echo 0
}
# --resume once the killed run has a checkpoint.
resume_option() { if (($(checkpointed killed) > 0)); then echo --resume; fi; }
# The last step in a run's metrics, or 0.
logged() {
  local line
  line=$(tail -n 1 "$work/$1/metrics.jsonl" 2>/dev/null || true)
  [[ $line =~ \"step\":([0-9]+) ]] && echo "${BASH_REMATCH[1]}" || echo 0
}

start=$(now_ms)
train straight
run_ms=$(($(now_ms) - start)) # the moments scale with it: the same on a fast or a slow build

# A fixed seed by default, so CI aims at the same steps each time (the milliseconds still vary
# with the machine's load); HYLA_KILL_SEED=random draws new moments.
seed=${HYLA_KILL_SEED:-1}
[ "$seed" = random ] && seed=$((RANDOM * 32768 + RANDOM))
RANDOM=$seed
echo "kill moments from seed $seed (HYLA_KILL_SEED=$seed repeats them)"
limit=$((steps * 8 / 10)) # kills aim before this step, so the run is still going at the tenth
for kill in $(seq 10); do
  done_step=$(checkpointed killed)
  launch killed $(resume_option)
  if ((RANDOM % 4 == 0)); then # during set-up, resuming or the first steps
    what="after $((ms = RANDOM % (run_ms / 10 + 1))) ms"
  else # a random step, then a little into what follows it (a step, evaluation, checkpoint)
    base=$(logged killed)
    ((base < done_step)) && base=$done_step
    span=$(((limit - base) / (11 - kill)))
    target=$((base + 1 + RANDOM % (span > 1 ? span : 1)))
    while (($(logged killed) < target)); do
      running $pid || fail "kill $kill: the run ended before step $target"
      sleep 0.005
    done
    what="at step $target + $((ms = RANDOM % (run_ms / 30 + 1))) ms"
  fi
  sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
  kill -KILL $pid 2>/dev/null || true
  rc=0
  wait $pid 2>/dev/null || rc=$? # (no "Killed" line)
  ((rc == 137)) || fail "kill $kill ($what): the run exited with $rc before it was killed"
  echo "kill $kill $what (resumed from step $done_step)"
done
train killed $(resume_option)
diff <(metrics straight) <(metrics killed) >"$work/diff" ||
  fail "the killed run's metrics differ from the uninterrupted run's: $(head -5 "$work/diff")"

# The last checkpoints hold the same weights, optimizer state and data position: two steps more
# from each give the same losses.
for run in straight killed; do
  train $run-more --set train.steps=$((steps + 2)) \
    --resume="$work/$run/ckpt-$(printf %08d $steps).h5"
done
diff <(metrics straight-more) <(metrics killed-more) >"$work/diff" ||
  fail "two steps from the last checkpoints differ: $(head -5 "$work/diff")"
echo "10 kills: every loss, every validation loss and the last checkpoint as uninterrupted"

# SIGTERM during an evaluation (of a million batches at step 50) stops the run within 2 s, with
# the checkpoint of step 50 and nothing of the evaluation recorded.
launch evalstop --set train.eval_batches=1000000
until grep -q '^{"step":50,"loss"' "$work/evalstop/metrics.jsonl" 2>/dev/null; do
  running $pid || fail "the run ended before step 50"
  sleep 0.01
done
sleep 0.2
stop_child TERM $pid
((rc == 143)) || fail "SIGTERM during an evaluation: exit status $rc, expected 143"
((took <= 2000)) || fail "SIGTERM during an evaluation: the run took $took ms to stop"
grep -q "eval step 50: stopped by a signal after [1-9][0-9]* of 1000000 batches" \
  "$work/evalstop/train.log" || fail "train.log does not say the evaluation stopped"
[ -f "$work/evalstop/ckpt-00000050.h5" ] || fail "no checkpoint of step 50"
! grep -q val_loss "$work/evalstop/metrics.jsonl" || fail "the stopped evaluation was recorded"
train evalstop --resume
diff <(metrics straight | grep -v '^{"step":50,"val_loss"') <(metrics evalstop) >"$work/diff" ||
  fail "resumed after SIGTERM, the run differs: $(head -5 "$work/diff")"
echo "SIGTERM during an evaluation: stopped in $took ms with a checkpoint; resumed as uninterrupted"
