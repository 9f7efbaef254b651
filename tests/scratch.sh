# Sourced by shell tests that stop at the first failure: a work directory (the current one,
# removed at exit), one thread, fail, and expect STATUS TEXT COMMAND... (the command exits with
# STATUS and prints TEXT, which may be empty). The output goes to out.txt in the work directory.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export HYLA_THREADS=1
fail() { echo "FAIL: $*"; exit 1; }
expect() {
  local want=$1 text=$2 rc=0
  shift 2
  "$@" >out.txt 2>&1 || rc=$?
  [ "$rc" = "$want" ] || fail "'$*' exited $rc, not $want: $(cat out.txt)"
  [ -z "$text" ] || grep -qF -- "$text" out.txt || fail "'$*' said '$(cat out.txt)', not '$text'"
}
