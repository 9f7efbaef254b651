# Shared by the shell tests in tests/cli/ (sourced with hyla's path as $1): a work directory
# removed at exit, one thread, and expect. A failed expectation sets status=1 and the test goes
# on, so that one run lists every failure; the test ends with `exit $status`.
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
