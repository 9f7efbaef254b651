# Shared by the shell tests in tests/cli/ (sourced with hyla's path as $1): a work directory
# removed at exit, one thread, expect and tiny_dataset. A failed expectation sets status=1 and
# the test goes on, so that one run lists every failure; the test ends with `exit $status`.
hyla=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HYLA_THREADS=1
status=0

# expect CODE MESSAGE ARGS...: hyla ARGS exits with CODE and prints MESSAGE (a fixed string).
# A regression that runs on fails at the timeout rather than hangs.
expect() {
  local code=$1 message=$2 out rc
  shift 2
  out=$(timeout 120 "$hyla" "$@" 2>&1 </dev/null)
  rc=$?
  if [ "$rc" != "$code" ] || ! grep -qF -- "$message" <<<"$out"; then
    echo "FAIL: hyla $* exited $rc (expected $code); output:"
    head -c 2000 <<<"$out"
    echo
    echo "  expected: $message"
    status=1
  fi
}

# tiny_dataset: $work/data.h5, a few kB of text ($work/text.txt) prepared as bytes.
tiny_dataset() {
  for _ in $(seq 200); do echo "It was the best of times, it was the worst of times."; done >"$work/text.txt"
  expect 0 "wrote $work/data.h5" data prepare "$work/text.txt" "$work/data.h5"
}
