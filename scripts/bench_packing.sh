#!/usr/bin/env bash
# The cost of document boundaries (docs/data.md): trains recipes/hybrid-3to1-tiny.toml on the
# shipped corpus cut into documents at blank lines, with data.packing = "stream" and
# "documents", for each row shape, and prints tokens/s of each and their ratio as a Markdown
# table (tokens/s over the last two thirds of the steps, as the metrics log them).
#   scripts/bench_packing.sh [--device cpu|cuda] [--precision f32|bf16] [--steps N]
#                            [--rows BxT,BxT,...] [--hyla BIN] [--out DIR]
# Defaults: cpu, f32, 150 steps, rows 16x128,8x512, build/hyla, runs/bench-packing. The dataset
# (data/cache/shakespeare-documents.h5) is made on first use with
# `hyla data prepare --doc-separator '\n\n'`.
set -euo pipefail
usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }
device=cpu precision=f32 steps=150 rows=16x128,8x512 hyla=build/hyla out=runs/bench-packing
while [ $# -gt 0 ]; do
  case "$1" in
  -h | --help) usage; exit 0 ;;
  --device) device=$2; shift 2 ;;
  --precision) precision=$2; shift 2 ;;
  --steps) steps=$2; shift 2 ;;
  --rows) rows=$2; shift 2 ;;
  --hyla) hyla=$2; shift 2 ;;
  --out) out=$2; shift 2 ;;
  *) usage >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
[ -x "$hyla" ] || { echo "bench_packing.sh: no hyla at $hyla (--hyla BIN)" >&2; exit 2; }
data=data/cache/shakespeare-documents.h5
if [ ! -f $data ]; then
  mkdir -p data/cache
  "$hyla" data prepare data/corpus/shakespeare.txt.gz $data --doc-separator '\n\n' >&2
fi
mkdir -p "$out"

tokens_per_s() { # METRICS TOKENS_PER_STEP: tokens/s over the last two thirds of the logged steps
  python3 - "$1" "$2" <<'PY'
import json, sys
ms = [m for m in map(json.loads, open(sys.argv[1])) if "tokens_per_s" in m]
a, b = ms[len(ms) // 3], ms[-1]
print(round((b["step"] - a["step"]) * int(sys.argv[2]) / (b["elapsed_s"] - a["elapsed_s"]))
      if b["step"] > a["step"] else round(b["tokens_per_s"]))
PY
}

echo "| rows | \`\"stream\"\` tok/s | \`\"documents\"\` tok/s | ratio |"
echo "| --- | --- | --- | --- |"
for shape in ${rows//,/ }; do
  B=${shape%x*} T=${shape#*x}
  declare -A tps=()
  for packing in stream documents; do
    dir="$out/$shape-$packing"
    "$hyla" train recipes/hybrid-3to1-tiny.toml --set "train.device=\"$device\"" \
      --set "train.precision=\"$precision\"" --set "data.dataset=\"$data\"" \
      --set "data.packing=\"$packing\"" --set "train.batch=$B" --set "train.seq_len=$T" \
      --set "train.steps=$steps" --set train.log_every=$(((steps + 9) / 10)) \
      --set train.eval_every=0 --set train.checkpoint_every=0 --set "run.out=\"$dir\"" \
      --restart --quiet >"$out/$shape-$packing.log" 2>&1 ||
      { echo "bench_packing.sh: $shape $packing failed: see $out/$shape-$packing.log" >&2; exit 1; }
    tps[$packing]=$(tokens_per_s "$dir/metrics.jsonl" $((B * T)))
  done
  ratio=$(awk -v a="${tps[documents]}" -v b="${tps[stream]}" 'BEGIN { printf "%.2f", a / b }')
  echo "| $B x $T | ${tps[stream]} | ${tps[documents]} | $ratio |"
  unset tps
done
echo
echo "(hybrid-3to1-tiny, $device, $precision, $steps steps; $(git log -1 --format=%h 2>/dev/null || echo '?'))"
