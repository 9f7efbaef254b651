#!/usr/bin/env bash
# hyla eval --set: a key evaluation reads changes the result (softplus re-weighting's eval_power
# at twice the training length), a key that changes a parameter's shape fails as the checkpoint
# loads, an unknown key is refused with its name; and scripts/ablations/extrapolation.sh on a
# sweep that did not train per eval_power evaluates its softplus run at each power of $POWERS
# and its other runs once.
#   eval_set.sh HYLA_BINARY
set -uo pipefail
source "$(dirname "$0")/common.sh"
root="$(cd "$(dirname "$0")/../.." && pwd)"

tiny_dataset
cat >"$work/sweep.toml" <<TOML
[run]
out = "$work/sweep"
[model]
d_model = 16
n_heads = 2
layers = "softplus"
[train]
batch = 2
seq_len = 16
steps = 40
eval_every = 0
eval_batches = 1
[optim]
lr = 1e-2
warmup = 0
[data]
dataset = "$work/data.h5"
[sweep]
"model.layers" = ["softplus", "attn"]
seeds = [0]
TOML
expect 0 "2 trained" sweep "$work/sweep.toml"
softplus=$(ls "$work"/sweep/layers=softplus,seed=0/ckpt-*.h5 | tail -1)

loss() { "$hyla" eval "$softplus" --seq-len 32 --batches 1 "$@" 2>&1 | awk '$1 == "loss" { print $2 }'; }
plain=$(loss) reweighted=$(loss --set layer.softplus.eval_power=2)
same=$(loss --set layer.softplus.eval_power=1)
if [ -z "$plain" ] || [ -z "$reweighted" ] || [ "$plain" = "$reweighted" ] || [ "$plain" != "$same" ]; then
  echo "FAIL: eval_power 1 (default) $plain, 1 (--set) $same, 2 (--set) $reweighted: 2 should differ"
  status=1
fi
expect 1 "has shape [256, 16], the recipe's model needs [256, 32]" eval "$softplus" --set model.d_model=32
expect 1 "no_such_key" eval "$softplus" --set train.no_such_key=1

out=$(HYLA="$hyla" NP=1 BATCHES=1 POWERS="1.0 2.0" \
  "$root/scripts/ablations/extrapolation.sh" "$work/sweep" 16 32 2>&1) || {
  echo "FAIL: extrapolation.sh: $out"
  status=1
}
csv="$work/sweep/extrapolation.csv"
rows=$(grep -c . "$csv")
for setting in '"eval_power=1.0,layers=softplus",0,32' '"eval_power=2.0,layers=softplus",0,32' \
  '"layers=attn",0,32'; do
  grep -qF "$setting" "$csv" || { echo "FAIL: no row $setting in $csv"; status=1; }
done
[ "$rows" = 7 ] || { echo "FAIL: $csv has $rows lines, expected a header and 6 rows"; status=1; }
grep -qF ",32,$reweighted" <(grep eval_power=2.0 "$csv") ||
  { echo "FAIL: $csv: eval_power 2 at T 32 is not hyla eval's $reweighted"; status=1; }
echo "eval_power 1: $plain, 2: $reweighted"
exit $status
