#!/usr/bin/env bash
# Recipes in all of TOML 1.0, from the command line: a recipe written with inline tables and
# top-level dotted keys trains; --set takes bare strings for string keys and TOML otherwise, and
# a bad value names the key; train's and sweep's --help say so.
#   toml_cli.sh HYLA_BINARY
set -uo pipefail
hyla=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export HYLA_THREADS=1
status=0
fail() {
  echo "FAIL: $*"
  status=1
}
expect() { # STATUS TEXT COMMAND...: the command exits with STATUS and prints TEXT
  local want=$1 text=$2 rc=0
  shift 2
  "$@" >out.txt 2>&1 || rc=$?
  [ "$rc" = "$want" ] || fail "'$*' exited $rc, not $want: $(cat out.txt)"
  [ -z "$text" ] || grep -qF -- "$text" out.txt || fail "'$*' said '$(cat out.txt)', not '$text'"
}

cat >r.toml <<'TOML'
run = { name = "t", seed = 3 }   # an inline table
model.d_model = 32               # top-level dotted keys
model.n_heads = 2
model.layers = 'gla,attn'
train = { batch = 2, seq_len = 16, steps = 0x3, log_every = 1, eval_every = 0, eval_batches = 1 }
[optim]
lr = 1_0e-4
schedule = """constant"""
TOML
expect 0 "" "$hyla" train r.toml --quiet --set run.out=out1
grep -qxF "d_model = 32" out1/recipe.toml || fail "the resolved recipe lacks d_model = 32"
grep -qxF 'name = "t"' out1/recipe.toml || fail "the resolved recipe lacks name = \"t\""
grep -qxF "lr = 0.001" out1/recipe.toml || fail "the resolved recipe lacks lr = 0.001"
ls out1/ckpt-00000003.h5 >/dev/null 2>&1 || fail "no checkpoint of step 3 in out1: $(ls out1)"

expect 0 "" "$hyla" train r.toml --quiet --set 'run.out="out2"' --set optim.schedule=wsd
[ -f out2/recipe.toml ] || fail "--set 'run.out=\"out2\"' did not train into out2"
grep -qxF 'schedule = "wsd"' out2/recipe.toml || fail "--set optim.schedule=wsd was not taken"

expect 1 "hyla train: --set model.d_model=abc: [model] d_model: expected an integer >= 8, got abc" \
  "$hyla" train r.toml --check --set model.d_model=abc
expect 1 "--set optim.lr=fast: [optim] lr: expected a float > 0, got fast" \
  "$hyla" train r.toml --check --set optim.lr=fast
sed 's/d_model = 32/d_model = 3x/' r.toml >bad.toml
expect 1 "bad.toml:2:18: model.d_model: error while parsing" "$hyla" train bad.toml --check

for cmd in train sweep; do
  expect 0 "--set run.out=/tmp/x" "$hyla" "$cmd" --help
done
exit $status
