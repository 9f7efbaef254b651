# shellcheck shell=bash
# The probe's machinery (sourced by probe.sh): run one case, judge how it ended, and check that
# no file it was handed changed. Each case runs in its own folder, $work/c<N>; every file there
# and under $in when the command starts is an input, hashed before and after.
#
# A case:
#   begin "what it tries"        a fresh folder, made the current one; set up its files
#   [quick_too]                  run it under --quick too (which runs one case in 4)
#   [may_change GLOB...]         paths (relative to the folder) the command may rewrite or remove
#   [moved_ok]                   inputs may move inside the folder (--restart), not vanish
#   expect KIND NAMES CMD...     run CMD (timeout $case_timeout) and judge it:
#     KIND ok: must exit 0; fail: must exit non-zero (not by a signal) and, when NAMES is not
#     empty, print one of NAMES (|-separated fixed strings) on stderr; fail-or-ok: either, an
#     error naming one of NAMES; any: any exit but a crash
#   stop SIG READY CMD...        start CMD, wait until READY (a fixed string; @S: S seconds) is in
#                                its output, send SIG, and give it $stop_grace s to end: 0 or
#                                128+SIG
#
# Classes of failure: crash (a signal the probe did not send, exit 134, a sanitizer report), hang
# (past the timeout, or alive $stop_grace s after a stop signal), wrong (exit 0 where an error was
# required, an error that does not name what it must, a failure where success was required),
# lost (an input changed or removed; an existing output replaced).

case_timeout=${PROBE_TIMEOUT:-60}
stop_grace=${PROBE_STOP_GRACE:-10}
n=0
bg_dir=
skipping=false
classes=(cases passed crash hang wrong lost skipped)
declare -A tally # CLASS and GROUP.CLASS: how many cases
groups=()
group() { # the cases from here on are summed up as GROUP
  [ -n "${group_name:-}" ] && tally[$group_name.seconds]=$((SECONDS - group_start))
  group_name=$1
  group_start=$SECONDS
  [ -n "$1" ] && groups+=("$1")
  local c
  for c in "${classes[@]}"; do tally[$c]=${tally[$c]:-0} tally[$1.$c]=0; done
}
count() { # CLASS [N]: N more (1), in all and in the group
  tally[$1]=$((tally[$1] + ${2:-1}))
  tally[$group_name.$1]=$((tally[$group_name.$1] + ${2:-1}))
}
sanitizer='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|Sanitizer:DEADLYSIGNAL'

begin() {
  [ -n "${PROBE_TIMES:-}" ] && [ $n -gt 0 ] &&
    echo "$((SECONDS - case_start)) #$n $label" >>"$PROBE_TIMES" # the slow cases, to find them
  case_start=$SECONDS
  n=$((n + 1))
  label=$1
  dir=$work/c$n
  mkdir -p "$dir"
  cd "$dir" || exit 1
  changing=()
  moves=false
  # --quick: one case in 4 but mutants, and those marked quick_too
  skipping=false
  $quick && [ "$group_name" != mutants ] && [ $((n % 4)) != 1 ] && skipping=true
  true
}
quick_too() { skipping=false; }
may_change() { changing+=("$@"); }
moved_ok() { moves=true; }

# A case that cannot run here (counted, not judged).
skip() {
  count skipped
  echo "skip   #$n $label: $1"
}

# Every regular file of the case's folder and of the shared inputs, with its hash.
snapshot() { find "$dir" "$in" -type f -print0 | sort -z | xargs -0 -r sha256sum >"$1"; }

# The inputs that changed or vanished since snapshot $1, one per line.
lost_inputs() {
  local path rel pattern status hash
  sha256sum --quiet -c "$1" 2>/dev/null | while IFS= read -r status; do
    path=${status%: FAILED*}
    rel=${path#"$dir"/}
    [[ $rel == */.lock ]] && continue # a run directory's lock records its last holder's pid
    for pattern in "${changing[@]}"; do
      # shellcheck disable=SC2053 # the pattern is a glob on purpose
      [[ $rel == $pattern ]] && continue 2
    done
    if $moves; then
      hash=$(grep -F "  $path" "$1" | head -n 1 | cut -d' ' -f1)
      find "$dir" -type f -print0 | xargs -0 -r sha256sum | grep -q "^$hash " && continue
    fi
    if [ -e "$path" ]; then echo "$path changed"; else echo "$path removed"; fi
  done
}

# report CLASS WHY: one failing case, with its command and the head of its stderr.
report() {
  count "$1"
  printf '%-6s #%d %s: %s\n' "$1" "$n" "$label" "$2"
  printf '         $ %s\n' "$(cd "$dir" && printf '%q ' "${cmd[@]}" | cut -c1-400)"
  head -n 4 "$log.err" | cut -c1-300 | sed 's/^/         | /'
}

# judge KIND NAMES RC SENT ELAPSED: classify a finished command (SENT: the signal sent, or 0).
judge() {
  local kind=$1 names=$2 rc=$3 sent=$4 elapsed=$5 why= class= name found
  if grep -qE "$sanitizer" "$log.err" "$log.out"; then
    class=crash why="a sanitizer report (exit $rc)"
  elif [ "$sent" = 0 ] && { [ "$rc" = 124 ] || [ "$elapsed" -ge "$case_timeout" ]; }; then
    class=hang why="still running after ${case_timeout}s"
  elif [ "$rc" = 134 ] || { [ "$rc" -ge 128 ] && [ "$rc" != $((128 + sent)) ]; }; then
    class=crash why="exit $rc (signal $((rc - 128)))"
  elif [ "$kind" = stop ] && [ "$rc" != 0 ] && [ "$rc" != $((128 + sent)) ]; then
    class=wrong why="exit $rc after signal $sent (0 or $((128 + sent)) expected)"
  elif [ "$kind" = ok ] && [ "$rc" != 0 ]; then
    class=wrong why="exit $rc where success was expected"
  elif [ "$kind" = fail ] && [ "$rc" = 0 ]; then
    class=wrong why="exit 0 where an error was required"
  elif [ "$kind" != any ] && [ "$rc" != 0 ] && [ -n "$names" ]; then
    found=false
    IFS='|' read -ra alternatives <<<"$names"
    for name in "${alternatives[@]}"; do grep -qF -- "$name" "$log.err" && found=true; done
    $found || class=wrong why="the error does not name '$names'"
  fi
  if [ -z "$class" ]; then
    local lost
    lost=$(lost_inputs "$log.sha")
    [ -n "$lost" ] && class=lost why=$(head -n 3 <<<"$lost" | tr '\n' ';')
  fi
  count cases
  last_ok=false
  if [ -n "$class" ]; then
    report "$class" "$why"
  else
    count passed
    last_ok=true
  fi
  $last_ok
}

expect() {
  $skipping && return
  local kind=$1 names=$2 rc start
  shift 2
  cmd=("$@")
  log=$work/log/$n
  snapshot "$log.sha"
  start=$SECONDS
  timeout -k 5 "$case_timeout" "$@" >"$log.out" 2>"$log.err" </dev/null
  rc=$?
  last_rc=$rc
  judge "$kind" "$names" "$rc" 0 $((SECONDS - start))
}

# wait_ready PID READY LOG: until the process has printed READY (a fixed string; @S: until it has
# run S seconds), has ended, or has run $case_timeout s.
wait_ready() {
  local pid=$1 ready=$2 waited=0 limit=$((case_timeout * 10))
  [[ $ready == @* ]] && limit=$((${ready#@} * 10))
  while kill -0 "$pid" 2>/dev/null && [ $waited -lt $limit ]; do
    [[ $ready != @* ]] && grep -qsF -- "$ready" "$3.out" "$3.err" && return
    sleep 0.1
    waited=$((waited + 1))
  done
}

# signal_and_judge SIG PID: send SIG and give the process $stop_grace s to end; 0 and 128 + SIG
# are the expected exits. Still running then, it is killed: a hang.
signal_and_judge() {
  local sig=$1 pid=$2 waited=0 rc
  kill -s "$sig" "$pid" 2>/dev/null
  while kill -0 "$pid" 2>/dev/null && [ $waited -lt $((stop_grace * 10)) ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    count cases
    last_ok=false
    report hang "still running ${stop_grace}s after SIG$sig"
    return 1
  fi
  wait "$pid"
  rc=$?
  judge stop "" "$rc" "$(kill -l "$sig")" 0
}

# stop SIG READY CMD...: the command under a signal sent once READY shows in its output (or once
# it has run $case_timeout s without it). The signals' default actions are restored for the
# command (a background job of a script starts with SIGINT ignored).
stop() {
  $skipping && return
  local sig=$1 ready=$2 pid
  shift 2
  cmd=("$@")
  log=$work/log/$n
  snapshot "$log.sha"
  env --default-signal=INT,TERM "$@" >"$log.out" 2>"$log.err" </dev/null &
  pid=$!
  wait_ready "$pid" "$ready" "$log"
  signal_and_judge "$sig" "$pid"
}

# A hyla process in the background for cases that run beside it: started by bg_start READY
# CMD..., ended by bg_stop SIG (judged as a case of its own, as stop judges).
bg_start() {
  $skipping && return
  local ready=$1
  shift
  bg_cmd=("$@")
  bg_log=$work/log/bg$n
  env --default-signal=INT,TERM "$@" >"$bg_log.out" 2>"$bg_log.err" </dev/null &
  bg_pid=$!
  bg_dir=$dir
  wait_ready "$bg_pid" "$ready" "$bg_log"
}
bg_stop() {
  $skipping && return
  cmd=("${bg_cmd[@]}")
  log=$bg_log
  : >"$log.sha" # what the background run writes is its own
  signal_and_judge "$1" "$bg_pid"
}

# check CLASS WHY CONDITION...: a check of the last case's outcome beyond its exit (a file it
# must have written, an answer it must have given); when CONDITION fails the case fails as CLASS.
check() {
  $skipping && return
  local class=$1 why=$2
  shift 2
  "$@" && return 0
  if $last_ok; then
    count passed -1
    report "$class" "$why"
  fi
  last_ok=false
  return 1
}

# as_nobody: the prefix that runs a command as another user than root where the probe is root
# (permissions do not bind root); empty where it is not. can_drop_root: whether that is possible.
as_nobody=()
[ "$(id -u)" = 0 ] && as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
can_drop_root() { [ "$(id -u)" != 0 ] || command -v setpriv >/dev/null; }
