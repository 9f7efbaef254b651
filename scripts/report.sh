#!/usr/bin/env bash
# Draw a sweep's plots with gnuplot and write its Markdown report.
#   scripts/report.sh SWEEP_DIR
# Reads SWEEP_DIR/summary.csv and summary.md (written by `hyla sweep`) and each run's
# metrics.jsonl; writes SWEEP_DIR/val_loss.png (the validation loss of each run), accuracy.png
# (MQAR sweeps), curves.png (every run's loss curves, as scripts/plot.sh draws them) and
# SWEEP_DIR/report.md with the table and the plots.
set -euo pipefail

usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; }
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  "") usage >&2; exit 2 ;;
esac
[ $# -eq 1 ] || { usage >&2; exit 2; }
dir="${1%/}"
here=$(cd "$(dirname "$0")" && pwd)
csv="$dir/summary.csv"
[ -f "$csv" ] || { echo "report.sh: $csv does not exist (run 'hyla sweep' first)" >&2; exit 1; }
[ -f "$dir/summary.md" ] || { echo "report.sh: $dir/summary.md does not exist" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "report.sh: gnuplot is missing (apt-get install gnuplot-nox)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# summary.csv to tab-separated fields: run names and layer patterns hold commas, so fields may be
# quoted ("a,b", with "" for a quote).
awk '{
  out = ""; field = ""; quoted = 0
  for (i = 1; i <= length($0); i++) {
    c = substr($0, i, 1)
    if (quoted) {
      if (c == "\"" && substr($0, i + 1, 1) == "\"") { field = field c; i++ }
      else if (c == "\"") quoted = 0
      else field = field c
    } else if (c == "\"") quoted = 1
    else if (c == ",") { out = out field "\t"; field = "" }
    else field = field c
  }
  print out field
}' "$csv" >"$tmp/summary.tsv"

# Column numbers by name, from the header.
col() { head -1 "$tmp/summary.tsv" | tr '\t' '\n' | grep -nx "$1" | cut -d: -f1; }
c_run=$(col run); c_status=$(col status); c_val=$(col val_loss); c_acc=$(col val_acc)
[ -n "$c_run" ] && [ -n "$c_val" ] || { echo "report.sh: $csv lacks the run or val_loss column" >&2; exit 1; }

# One bar per finished run: index, name, value.
bars() {
  awk -F'\t' -v c="$1" -v r="$c_run" -v s="$c_status" \
    'NR > 1 && $s == "done" && $c != "" { n++; print n "\t" $r "\t" $c }' "$tmp/summary.tsv"
}
draw_bars() { # data file, output, y label
  local n width
  n=$(wc -l <"$1")
  width=$((n * 70 > 800 ? n * 70 : 800))
  gnuplot <<GP
set terminal pngcairo size $width,650 noenhanced
set output '$2'
set datafile separator '\t'
set style fill solid 0.6 border -1
set boxwidth 0.7
set ylabel '$3'
set xtics rotate by -40 left font ',9'
set grid ytics
set bmargin 12
set rmargin 12
set offsets 0.5, 0.5, 0, 0
plot '$1' using 1:3:xtic(2) with boxes notitle, '' using 1:3:(sprintf('%.3f', \$3)) with labels offset 0,0.7 notitle
GP
}

images=()
bars "$c_val" >"$tmp/val"
if [ -s "$tmp/val" ]; then
  draw_bars "$tmp/val" "$dir/val_loss.png" 'validation loss (nats per token)'
  images+=("## Validation loss of each run" "" "![validation loss](val_loss.png)" "")
fi
if [ -n "$c_acc" ]; then
  bars "$c_acc" >"$tmp/acc"
  if [ -s "$tmp/acc" ]; then
    draw_bars "$tmp/acc" "$dir/accuracy.png" 'MQAR accuracy'
    images+=("## MQAR accuracy of each run" "" "![accuracy](accuracy.png)" "")
  fi
fi

# Loss curves of every run that has metrics.
runs=()
while IFS= read -r run; do
  [ -f "$dir/$run/metrics.jsonl" ] && runs+=("$dir/$run")
done < <(awk -F'\t' -v r="$c_run" 'NR > 1 { print $r }' "$tmp/summary.tsv")
if [ ${#runs[@]} -gt 0 ]; then
  "$here/plot.sh" -o "$dir/curves.png" "${runs[@]}" >/dev/null
  images+=("## Loss curves" "" "Training loss (lines) and validation loss (points) of every run." ""
           "![loss curves](curves.png)" "")
fi

{
  sed -n '1s/^# Sweep/# Sweep report:/p' "$dir/summary.md"
  echo
  echo "Written by scripts/report.sh from summary.csv and each run's metrics.jsonl."
  sed '1d' "$dir/summary.md"
  echo
  printf '%s\n' "${images[@]}"
} >"$dir/report.md"
echo "wrote $dir/report.md"
