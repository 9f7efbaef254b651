#!/usr/bin/env bash
# scripts/ablations/best-lr.py on a summary with known numbers: the learning rate of the highest
# mean accuracy over the seeds wins, ties (accuracies at chance) go to the lower validation loss,
# one seed is printed without a spread, --metric val_loss picks the lowest loss, runs not done are
# left out, an unknown column is an error that lists the swept ones.
here=$(cd "$(dirname "$0")" && pwd)
script="$here/../../scripts/ablations/best-lr.py"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
cat >"$work/summary.csv" <<'CSV'
run,model.d_model,model.layers,optim.lr,seed,status,steps,train_loss,val_loss,val_acc,tokens_per_s,wall_s
a,64,attn x 2,1e-3,0,done,10,1,2.0,0.50,1,1
b,64,attn x 2,1e-3,1,done,10,1,2.0,0.70,1,1
c,64,attn x 2,1e-2,0,done,10,1,1.5,0.55,1,1
d,64,attn x 2,1e-2,1,done,10,1,1.5,0.55,1,1
e,64,"gla,attn",1e-3,0,done,10,1,3.0,0.00,1,1
f,64,"gla,attn",1e-2,0,done,10,1,2.5,0.00,1,1
g,128,"gla,attn",1e-2,0,failed,,,,,,
CSV
check() { # expect a fixed string in the output of best-lr.py ARGS
  local want=$1 out
  shift
  out=$(python3 "$script" "$work" "$@" 2>&1)
  if ! grep -qF -- "$want" <<<"$out"; then
    echo "FAIL: best-lr.py $* printed:"
    echo "$out"
    echo "  expected: $want"
    status=1
  fi
}
check "| attn x 2 | 0.600 ± 0.141 (2.00), lr 1e-3 |  |"
check "| gla,attn | 0.000 (2.50), lr 1e-2 |  |"
check "1 runs not done or without val_acc are left out."
check "| attn x 2 | 1.500 ± 0.000, lr 1e-2 |  |" --metric val_loss
check "has no column model.nope (swept: model.d_model, model.layers, optim.lr)" --rows model.nope
exit $status
