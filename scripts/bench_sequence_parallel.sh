#!/usr/bin/env bash
# Sequence parallelism on one machine: training steps of a 4-layer model of one mixer kind
# (default gla; d = 128) on one sequence of T tokens (default 8192), as one process and as
# `mpirun -np W` with the sequence split over the W ranks (default W = 2), each rank with one
# thread; prints tokens/s, peak memory per rank and the bytes rank 0 sends per step, and the
# ratios to one process.
#   scripts/bench_sequence_parallel.sh [BUILD_DIR] [T] [steps] [kind] [W ...]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
T=${2:-8192}
steps=${3:-3}
kind=${4:-gla}
shift $(($# < 4 ? $# : 4))
widths=("${@:-2}")
bench="$build/bench_sequence_parallel"
[ -x "$bench" ] || { echo "bench_sequence_parallel.sh: build first ($bench missing)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 HYLA_THREADS=1

field() { sed -n "s/.*$1.*/\\1/p" <<<"$2"; } # the number a pattern's group matches in a run's lines
declare -A tps arena rss sent p2p
for w in 1 "${widths[@]}"; do
  out=$(mpiexec --oversubscribe -np "$w" "$bench" "$T" "$steps" "$kind" | tee /dev/stderr)
  tps[$w]=$(field '  \([0-9]*\) tokens\/s' "$out")
  arena[$w]=$(field 'peak arena\/rank \([0-9.]*\) MiB' "$out")
  rss[$w]=$(field 'peak RSS\/rank \([0-9.]*\) MiB' "$out")
  sent[$w]=$(field 'allgather \([0-9]*\) bytes' "$out")
  p2p[$w]=$(field ' send \([0-9]*\) bytes' "$out")
done
echo
printf '%-30s %12s' "$kind, T = $T" "1 process"
for w in "${widths[@]}"; do printf ' %12s %7s' "sp = $w" ratio; done
echo
row() { # label array
  local -n a=$2
  printf '%-30s %12s' "$1" "${a[1]}"
  for w in "${widths[@]}"; do
    awk -v x="${a[1]}" -v y="${a[$w]}" 'BEGIN { printf " %12s %7s", y, (x > 0 ? sprintf("%.2f", y / x) : "-") }'
  done
  echo
}
row "tokens/s" tps
row "peak activations/rank MiB" arena
row "peak RSS/rank MiB" rss
row "allgather bytes/step, rank 0" sent
row "send bytes/step, rank 0" p2p
