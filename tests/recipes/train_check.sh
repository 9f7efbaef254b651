#!/usr/bin/env bash
# `hyla train --check`: a valid recipe prints its sizes and exits 0 without training; a recipe a
# layer could not be built from, one whose sizes do not fit in 64 bits and a CPU run beyond any
# machine's memory each exit 1 with a message naming the key, never by a signal.
#   tests/recipes/train_check.sh build/hyla
set -uo pipefail
hyla=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
status=0
fail() {
  echo "FAIL: $*"
  status=1
}

out=$("$hyla" train "$root/recipes/quickstart.toml" --check --set 'run.out="checked"' 2>&1)
rc=$?
[ $rc -eq 0 ] || fail "a valid recipe exits $rc: $out"
for want in "a valid recipe" "parameters  895392 (3.4 MiB)" "training    holds" \
  "a step      about" "model       built on the CPU: 895392 parameters"; do
  grep -qF -- "$want" <<<"$out" || fail "no '$want' in: $out"
done
[ ! -e checked ] || fail "--check wrote the run directory"

# the shipped Titans recipes pass the check too
for name in titans-mal-tiny titans-mag-tiny titans-mac-tiny; do
  out=$("$hyla" train "$root/recipes/$name.toml" --check --set 'run.out="checked"' 2>&1)
  rc=$?
  [ $rc -eq 0 ] || fail "recipes/$name.toml --check exits $rc: $out"
  grep -qF -- "a valid recipe" <<<"$out" || fail "recipes/$name.toml: no 'a valid recipe' in: $out"
done

refused() { # expected message, then --set arguments
  local want=$1
  shift
  local args=()
  for s in "$@"; do args+=(--set "$s"); done
  out=$("$hyla" train "$root/recipes/quickstart.toml" --check "${args[@]}" 2>&1)
  rc=$?
  [ $rc -eq 1 ] || fail "$* exits $rc (expected 1): $out"
  grep -qF -- "$want" <<<"$out" || fail "$*: no '$want' in: $out"
}
refused "hyla train: --set layer.titans.expansion=1e-9: [layer.titans] the memory's hidden width" \
  'model.layers="titans_mal"' layer.titans.expansion=1e-9
refused "hyla train: --set layer.titans.segment=40: [layer.titans] segment = 40 must be a multiple of [layer.titans] chunk = 16" \
  'model.layers="titans_mac"' layer.titans.chunk=16 layer.titans.segment=40
refused "hyla train: --set dist.sp=2: [layer.titans] segment = 96 must divide each sequence-parallel rank's slice" \
  'model.layers="titans_mac"' layer.titans.chunk=16 layer.titans.segment=96 dist.sp=2
refused "hyla train: --set train.batch=9223372036854775807: a micro-batch's tokens" \
  train.batch=9223372036854775807
refused "[model] vocab = 1152921504606846976: tokens are 32-bit" model.vocab=1152921504606846976
refused "hyla train: training on the CPU takes" train.batch=1073741824
exit $status
