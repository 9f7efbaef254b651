#!/usr/bin/env bash
# A hostile user's probe of hyla: hand-made cases (every recipe key out of range, wrong types,
# malformed --set, damaged and misplaced files, outputs over inputs, busy and foreign run
# directories, planted symlinks, signals mid-run) and recipes mutated from the shipped ones. Run it
# against the ASan/UBSan build:
#
#   cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DHYLA_SANITIZE=ON
#   cmake --build build-asan -j --target hyla_cli
#   tests/probe/probe.sh build-asan/hyla [--quick] [--mutants N] [--seed S]
#
# Every case is judged: crash (a signal the probe did not send, exit 134, a sanitizer report),
# hang, wrong (success where an error was required, an error that does not name the key, option or
# file at fault) or lost (an input changed or removed, an output replaced without --force). Each
# failing case prints a line with its command and the head of its stderr; a table sums them up.
# Exit status 1 when any case fails. --quick runs one case in 4 (but mutants), one value per
# key, and 30 mutants: seconds, not minutes. The environment may set PROBE_TIMEOUT (a case's
# limit, 60 s), PROBE_STOP_GRACE (the time to end after a signal, 10 s), PROBE_KEEP (where failing
# mutants are kept) and PROBE_TIMES (a file to list each case's seconds in). docs/testing.md says
# more.
set -uo pipefail
usage="usage: probe.sh HYLA_BINARY [--quick] [--mutants N] [--seed S]"
[ $# -ge 1 ] || {
  echo "$usage" >&2
  exit 2
}
hyla=$(realpath "$1")
shift
quick=false
mutants=600
seed=18
while [ $# -gt 0 ]; do
  case $1 in
  --quick) quick=true mutants=30 ;;
  --mutants) mutants=$2 && shift ;;
  --seed) seed=$2 && shift ;;
  *) echo "$usage" >&2 && exit 2 ;;
  esac
  shift
done
[ -x "$hyla" ] || {
  echo "probe.sh: $hyla is not an executable" >&2
  exit 2
}
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/tests/probe
work=$(mktemp -d)
trap 'cd /; chmod -R u+rwX "$work"; rm -rf "$work"' EXIT
chmod 755 "$work" # cases run as another user where the probe is root
in=$work/in       # the shared inputs: every case checks they are untouched
mkdir -p "$in" "$work/log"
export HYLA_THREADS=1
# LeakSanitizer reports too; a UBSan report does not stop the process, the text is enough.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$here/lsan.supp}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=fixtures.sh
. "$here/fixtures.sh"
started=$SECONDS
make_fixtures || exit 1

# shellcheck source=cases.sh
. "$here/cases.sh"
# shellcheck source=keys.sh
. "$here/keys.sh"
# shellcheck source=mutants.sh
. "$here/mutants.sh"

group "" # closes the last group's time
cd "$work" || exit 1
failed=$((tally[crash] + tally[hang] + tally[wrong] + tally[lost]))
echo
printf '%-10s' group "${classes[@]}" seconds
echo
for g in "${groups[@]}" all; do
  printf '%-10s' "$g"
  for c in "${classes[@]}" seconds; do
    if [ "$g" = all ]; then
      [ "$c" = seconds ] && tally[$c]=$((SECONDS - started))
      printf '%-10s' "${tally[$c]}"
    else
      printf '%-10s' "${tally[$g.$c]}"
    fi
  done
  echo
done
echo "probe: ${tally[cases]} cases in $((SECONDS - started))s ($mutants mutants, seed $seed):" \
  "$failed failed"
[ "$failed" = 0 ]
