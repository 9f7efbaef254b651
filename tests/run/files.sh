#!/usr/bin/env bash
# hyla's files, from the command line: `data prepare` never writes over its input and replaces an
# existing output only with --force; `train` refuses a locked run directory and one that holds
# checkpoints it would not continue; a checkpoint write that fails (a file size limit stands in
# for a full disk) exits 1 with the earlier checkpoint intact, never by a signal; a recipe named
# recipe.toml in the run directory that a run did not write is not replaced.
#   files.sh HYLA_BINARY
set -euo pipefail
hyla=$1
source "$(dirname "$0")/../scratch.sh" # work, fail, expect

seq 1 6000 >in.txt
cp in.txt in.copy
expect 1 "in.txt is the input in.txt (the same file)" "$hyla" data prepare in.txt in.txt
ln -s in.txt link.h5
ln in.txt hard.h5
expect 1 "link.h5 is the input in.txt" "$hyla" data prepare in.txt link.h5 --force
expect 1 "hard.h5 is the input in.txt" "$hyla" data prepare in.txt hard.h5 --force
cmp -s in.txt in.copy || fail "data prepare wrote over its input"
expect 0 "wrote d.h5" "$hyla" data prepare in.txt d.h5
cp d.h5 d.copy
expect 1 "d.h5 exists; pass --force to replace it" "$hyla" data prepare in.txt d.h5 --val-fraction 0.2
cmp -s d.h5 d.copy || fail "data prepare replaced its output without --force"
expect 0 "wrote d.h5" "$hyla" data prepare in.txt d.h5 --val-fraction 0.2 --force
cmp -s d.h5 d.copy && fail "--force did not replace the output"

cat >r.toml <<TOML
[run]
out = "$work/run"
[model]
vocab = 256
d_model = 64
n_heads = 2
layers = ["attn"]
[train]
batch = 2
seq_len = 16
steps = 4
log_every = 1
eval_every = 0
eval_batches = 1
checkpoint_every = 2
[data]
dataset = "$work/d.h5"
TOML
expect 2 "pick one" "$hyla" train r.toml --resume --restart
expect 2 "pick one" "$hyla" train r.toml --resume=x.h5 --restart
expect 0 "" "$hyla" train r.toml --quiet --set train.stop_after=2
expect 1 "already holds checkpoints (the newest of step 2)" "$hyla" train r.toml --quiet
if command -v flock >/dev/null; then # another process holds the lock
  exec 9>run/.lock
  flock 9
  expect 1 "the run directory is in use by another hyla process" "$hyla" train r.toml --resume
  exec 9>&-
fi
cp run/ckpt-00000002.h5 kept.h5
(
  trap '' XFSZ # a write past the limit fails with EFBIG, as one on a full disk with ENOSPC
  ulimit -f 256
  expect 1 "the checkpoint was not saved, earlier ones are untouched" \
    "$hyla" train r.toml --resume --quiet --set train.checkpoint_every=1
)
cmp -s run/ckpt-00000002.h5 kept.h5 || fail "a failed write changed the earlier checkpoint"
ls run | grep -q tmp && fail "a failed write left a temporary file: $(ls run)"
expect 0 "" "$hyla" train r.toml --resume --quiet
[ -f run/ckpt-00000004.h5 ] || fail "the run did not finish after the failed write"

# A recipe named recipe.toml, trained into its own folder, is not replaced by the resolved one;
# the resolved recipe a run wrote is the run's to rewrite (here resumed from itself).
mkdir own && sed 's#^out = .*#out = "."#' r.toml >own/recipe.toml && cp own/recipe.toml own.copy
(cd own && expect 1 "recipe.toml is not a recipe a run wrote" "$hyla" train recipe.toml --quiet)
cmp -s own/recipe.toml own.copy || fail "a run replaced the recipe it was given"
expect 0 "" "$hyla" train run/recipe.toml --resume --quiet --set train.steps=5
echo "files: all checks passed"
