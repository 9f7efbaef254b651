#!/usr/bin/env bash
# hyla export through the command line: tiny models of each fla class (pure GLA, a 3:1
# GLA/attention hybrid with an untied head, linear attention beside windowed softmax attention,
# softmax attention alone) trained a few steps and exported with their logits; the refusals (a
# mixer fla lacks, a non-empty directory) and the usage errors. Where /usr/bin/python3 has PyTorch
# (scripts/setup.sh --reference), scripts/export-parity.py --reference reads each export with its
# own safetensors reader and reproduces hyla's logits with a plain PyTorch forward of fla's model
# code: the mapping of docs/export.md, checked without fla; else that part is skipped.
#   tests/run/export.sh HYLA [PYTHON]
set -uo pipefail
source "$(dirname "$0")/common.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
python=${2:-/usr/bin/python3}

recipe() { # name layers [extra model keys...]
  local name=$1 layers=$2
  shift 2
  cat >"$work/$name.toml" <<EOF
[run]
seed = 1
out = "$work/run-$name"
[model]
d_model = 32
n_heads = 2
layers = "$layers"
$(printf '%s\n' "$@")
[train]
batch = 4
seq_len = 32
steps = 20
log_every = 10
eval_every = 0
eval_batches = 2
threads = ${threads:-1}
[optim]
lr = 1e-2
warmup = 2
[data]
dataset = "$work/data.h5"
EOF
  "$hyla" train "$work/$name.toml" --quiet || fail "training $name"
}

recipe gla "gla x 4"
recipe hybrid "gla,gla,gla,attn x 1" "tied_embeddings = false"
recipe linear "linear,attn x 2" "[layer.attn]" "window = 8" "[layer.linear]" "heads = 1"
threads=0 recipe attn "attn x 2" # 0: HYLA_THREADS or every core, chosen again by export
recipe lightning "lightning,attn x 1"

dirs=()
for name in gla hybrid linear attn; do
  out=$("$hyla" export "$work/run-$name/ckpt-00000020.h5" "$work/export-$name" --logits 80) ||
    fail "export of $name: $out"
  for f in model.safetensors config.json hyla-logits.safetensors; do
    [ -s "$work/export-$name/$f" ] || fail "export of $name wrote no $f"
  done
  dirs+=("$work/export-$name")
done
grep -q '"model_type": "gla"' "$work/export-hybrid/config.json" || fail "hybrid: not a gla model"
grep -q '"attn": {"layers": \[3\]' "$work/export-hybrid/config.json" || fail "hybrid: attn list"
grep -q '"model_type": "linear_attn"' "$work/export-linear/config.json" || fail "linear's class"
grep -q '"model_type": "transformer"' "$work/export-attn/config.json" || fail "attn's class"

# refusals: exit 1, the mixer named, nothing written
out=$("$hyla" export "$work/run-lightning/ckpt-00000020.h5" "$work/export-lightning" 2>&1)
[ $? = 1 ] || fail "a lightning model exported: $out"
grep -q "layer 0: mixer 'lightning' has no counterpart" <<<"$out" || fail "message: $out"
[ ! -e "$work/export-lightning" ] || fail "a refused export made its directory"
out=$("$hyla" export "$work/run-gla/ckpt-00000020.h5" "$work/export-hybrid" 2>&1)
[ $? = 1 ] || fail "exported into a directory with files: $out"
grep -q "is not empty" <<<"$out" || fail "message: $out"
"$hyla" export "$work/run-gla/ckpt-00000020.h5" "$work/export-hybrid" --force >/dev/null ||
  fail "--force"
grep -q '"attn": null' "$work/export-hybrid/config.json" || fail "--force did not write over"
rm -rf "$work/export-hybrid"
"$hyla" export "$work/run-hybrid/ckpt-00000020.h5" "$work/export-hybrid" --logits 80 >/dev/null ||
  fail "export again"

# usage errors: exit 2
for args in "" "$work/run-gla/ckpt-00000020.h5" "a b c" "a b --logits 0" "a b --nope"; do
  # shellcheck disable=SC2086 # the arguments split on purpose
  "$hyla" export $args >/dev/null 2>&1
  [ $? = 2 ] || fail "hyla export $args: not a usage error"
done
"$hyla" export --help | grep -q "docs/export.md" || fail "--help"

if ! "$python" -c "import torch" 2>/dev/null; then
  echo "skip: $python has no PyTorch (scripts/setup.sh --reference): the reference forward"
  echo "ok   export: 4 classes exported, refusals and usage errors"
  exit 0
fi
"$python" "$root/scripts/export-parity.py" --reference "${dirs[@]}" || fail "reference forward"
echo "ok   export: 4 classes exported and reproduced by the reference forward"
