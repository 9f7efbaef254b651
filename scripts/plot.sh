#!/usr/bin/env bash
# Draw the loss curves of one or more runs into a PNG with gnuplot.
#   scripts/plot.sh [-o out.png] RUN_DIR...
# Each run contributes its training loss (thin line) and validation loss (points) from
# RUN_DIR/metrics.jsonl. Default output: loss.png in the first run directory.
set -euo pipefail

usage() { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; }
out=""
runs=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -o) out="$2"; shift 2 ;;
    *) runs+=("$1"); shift ;;
  esac
done
[ ${#runs[@]} -gt 0 ] || { usage >&2; exit 2; }
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot is missing (apt-get install gnuplot-nox)" >&2; exit 1; }
[ -n "$out" ] || out="${runs[0]}/loss.png"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
plots=()
for i in "${!runs[@]}"; do
  run="${runs[$i]}"
  m="$run/metrics.jsonl"
  [ -f "$m" ] || { echo "plot.sh: $m does not exist" >&2; exit 1; }
  name=$(basename "$run")
  # "step" and "loss" / "val_loss" out of each JSON line.
  sed -n 's/^{"step":\([0-9]*\),"loss":\([^,]*\),.*/\1 \2/p' "$m" >"$tmp/train$i"
  sed -n 's/^{"step":\([0-9]*\),"val_loss":\([^,}]*\).*/\1 \2/p' "$m" >"$tmp/val$i"
  [ -s "$tmp/train$i" ] && plots+=("'$tmp/train$i' using 1:2 with lines lw 1 title '$name train'")
  [ -s "$tmp/val$i" ] && plots+=("'$tmp/val$i' using 1:2 with linespoints pt 7 lw 2 title '$name val'")
done
[ ${#plots[@]} -gt 0 ] || { echo "plot.sh: no metrics to plot" >&2; exit 1; }
joined=$(IFS=,; echo "${plots[*]}")
gnuplot <<GP
set terminal pngcairo size 1000,600 noenhanced
set output '$out'
set xlabel 'step'
set ylabel 'loss (nats per token)'
set grid
set key top right
plot $joined
GP
echo "wrote $out"
