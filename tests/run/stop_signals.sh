#!/usr/bin/env bash
# SIGINT and SIGTERM stop every command cleanly, within 2 s, with exit status 128 + the signal (143
# for SIGTERM, 130 for SIGINT): `hyla eval` and `hyla generate` print what they did; `hyla data
# prepare` stopped while it reads writes nothing; `hyla train` finishes the step and writes its
# checkpoint; `hyla sweep` ends the run in progress with a checkpoint, starts no other and writes
# the summary.
#   tests/run/stop_signals.sh HYLA
set -euo pipefail
source "$(dirname "$0")/common.sh"
set -m # job control: background commands do not ignore SIGINT, as they otherwise would

tiny_recipe 20 >"$work/tiny.toml"
"$hyla" train "$work/tiny.toml" --quiet --set "run.out=\"$work/run\""
ckpt=$work/run/ckpt-00000020.h5

# hyla eval: SIGTERM during a hundred million batches
"$hyla" eval "$ckpt" --batches 100000000 >"$work/eval.out" 2>"$work/eval.err" &
pid=$!
wait_catching $pid
sleep 0.5 # some batches
stop_child TERM $pid
((rc == 143)) || fail "hyla eval: exit status $rc after SIGTERM, expected 143 ($(cat "$work/eval.err"))"
((took <= 2000)) || fail "hyla eval took $took ms to stop"
grep -q "stopped by SIGTERM after [1-9][0-9]* of 100000000 batches" "$work/eval.err" ||
  fail "hyla eval does not say where it stopped: $(cat "$work/eval.err")"
grep -q "^loss " "$work/eval.out" || fail "hyla eval printed no loss: $(cat "$work/eval.out")"
echo "hyla eval: SIGTERM -> 143 in $took ms: $(cat "$work/eval.err")"

# hyla generate: SIGINT once it has made some of a million tokens; what it printed is the prompt,
# the tokens it says it made and a newline
"$hyla" generate "$ckpt" --prompt ab --tokens 1000000 >"$work/gen.out" 2>"$work/gen.err" &
pid=$!
until (($(wc -c <"$work/gen.out") > 10)); do
  running $pid || fail "hyla generate ended early: $(cat "$work/gen.err")"
  sleep 0.01
done
stop_child INT $pid
((rc == 130)) || fail "hyla generate: exit status $rc after SIGINT, expected 130"
((took <= 2000)) || fail "hyla generate took $took ms to stop"
made=$(sed -nE 's/.*stopped by SIGINT after ([0-9]+) of 1000000 tokens$/\1/p' "$work/gen.err")
[ -n "$made" ] || fail "hyla generate does not say where it stopped: $(cat "$work/gen.err")"
(($(wc -c <"$work/gen.out") == 2 + made + 1)) ||
  fail "hyla generate printed $(wc -c <"$work/gen.out") bytes for $made tokens"
echo "hyla generate: SIGINT -> 130 in $took ms after $made tokens"

# hyla data prepare: SIGTERM while it reads its text from a pipe whose writer has gone silent
# (neither more text nor its end): it stops within 2 s, writes nothing and leaves no file behind
mkfifo "$work/fifo.txt"
before=$(ls -A "$work")
"$hyla" data prepare "$work/fifo.txt" "$work/fifo.h5" >"$work/data.out" 2>"$work/data.err" &
pid=$!
exec 3>"$work/fifo.txt"
wait_catching $pid
head -c 100000 "$work/text.txt" >&3
sleep 0.2 # read, then waiting for more
stop_child TERM $pid
exec 3>&-
((rc == 143)) || fail "hyla data prepare: exit status $rc after SIGTERM, expected 143"
((took <= 2000)) || fail "hyla data prepare took $took ms to stop"
grep -q "stopped by SIGTERM while reading the text: .*fifo.h5 not written" "$work/data.err" ||
  fail "hyla data prepare does not say it stopped: $(cat "$work/data.err")"
after=$(ls -A "$work" | grep -v '^data\.\(out\|err\)$')
[ "$after" = "$before" ] || fail "hyla data prepare left $(comm -13 <(echo "$before") <(echo "$after"))"
echo "hyla data prepare: SIGTERM while reading a silent pipe -> 143 in $took ms, nothing written"

# hyla train: SIGINT during the steps finishes the step, writes its checkpoint, exits 130
"$hyla" train "$work/tiny.toml" --quiet --set "run.out=\"$work/stopped\"" --set train.steps=1000000 \
  --set train.eval_every=0 2>"$work/train.err" &
pid=$!
until [ -s "$work/stopped/metrics.jsonl" ]; do
  running $pid || fail "hyla train ended early: $(cat "$work/train.err")"
  sleep 0.01
done
stop_child INT $pid
((rc == 130)) || fail "hyla train: exit status $rc after SIGINT, expected 130"
((took <= 2000)) || fail "hyla train took $took ms to stop"
step=$(sed -nE 's/.*signal: stopping after step ([0-9]+)$/\1/p' "$work/stopped/train.log")
[ -n "$step" ] || fail "train.log does not say where the run stopped"
[ -f "$work/stopped/ckpt-$(printf %08d "$step").h5" ] || fail "no checkpoint of step $step"
echo "hyla train: SIGINT -> checkpoint of step $step, 130 in $took ms"

# hyla train: SIGTERM inside a step of a million micro-batches abandons the step (no update, the
# loader put back) rather than finish it
"$hyla" train "$work/tiny.toml" --quiet --set "run.out=\"$work/long-step\"" \
  --set train.grad_accum=1000000 2>"$work/long.err" &
pid=$!
until [ -s "$work/long-step/train.log" ]; do
  running $pid || fail "hyla train ended early: $(cat "$work/long.err")"
  sleep 0.01
done
sleep 0.5
stop_child TERM $pid
((rc == 143)) || fail "hyla train: exit status $rc after SIGTERM in a long step, expected 143"
((took <= 2000)) || fail "hyla train took $took ms to stop inside a step"
grep -q "signal: stopping before the first step" "$work/long-step/train.log" ||
  fail "train.log does not say the step was abandoned: $(cat "$work/long-step/train.log")"
echo "hyla train: SIGTERM inside a long step -> abandoned, 143 in $took ms"

# hyla sweep: SIGTERM during the first of two long runs
{
  tiny_recipe 1000000
  printf '[sweep]\nseeds = [1, 2]\n'
} >"$work/sweep.toml"
"$hyla" sweep "$work/sweep.toml" --set "run.out=\"$work/sweep\"" >"$work/sweep.out" 2>&1 &
pid=$!
until [ -s "$work/sweep/seed=1/metrics.jsonl" ]; do
  running $pid || fail "hyla sweep ended early: $(cat "$work/sweep.out")"
  sleep 0.01
done
stop_child TERM $pid
((rc == 143)) || fail "hyla sweep: exit status $rc after SIGTERM, expected 143"
((took <= 2000)) || fail "hyla sweep took $took ms to stop"
grep -q "stopped by a signal" "$work/sweep.out" || fail "hyla sweep: $(cat "$work/sweep.out")"
ls "$work/sweep/seed=1"/ckpt-*.h5 >/dev/null 2>&1 || fail "the stopped run left no checkpoint"
! ls "$work/sweep/seed=2"/ckpt-*.h5 >/dev/null 2>&1 || fail "the second run was started"
grep -q "stopped by a signal; summary in" "$work/sweep.out" || fail "no summary: $(cat "$work/sweep.out")"
echo "hyla sweep: SIGTERM -> the first run checkpointed, the second not started, 143 in $took ms"
