#!/usr/bin/env bash
# Sequence parallelism on one machine: training steps of a 4-layer GLA model (d = 128) on one
# sequence of T tokens (default 8192), as one process and as `mpirun -np 2` with the sequence split
# over both ranks (LASP-2), each rank with one thread; prints tokens/s and peak memory per rank,
# and the ratios.   scripts/bench_sequence_parallel.sh [BUILD_DIR] [T] [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
T=${2:-8192}
steps=${3:-3}
bench="$build/bench_sequence_parallel"
[ -x "$bench" ] || { echo "bench_sequence_parallel.sh: build first ($bench missing)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 HYLA_THREADS=1

one=$(mpiexec --oversubscribe -np 1 "$bench" "$T" "$steps" | tee /dev/stderr | grep '^ranks=')
two=$(mpiexec --oversubscribe -np 2 "$bench" "$T" "$steps" | tee /dev/stderr | grep '^ranks=')
echo
printf '%-26s %12s %12s %8s\n' "" "1 process" "sp = 2" ratio
tps1=$(sed -n "s/.*  \([0-9]*\) tokens\/s.*/\1/p" <<<"$one")
tps2=$(sed -n "s/.*  \([0-9]*\) tokens\/s.*/\1/p" <<<"$two")
arena1=$(sed -n 's/.*peak arena\/rank \([0-9.]*\) MiB.*/\1/p' <<<"$one")
arena2=$(sed -n 's/.*peak arena\/rank \([0-9.]*\) MiB.*/\1/p' <<<"$two")
rss1=$(sed -n 's/.*peak RSS\/rank \([0-9.]*\) MiB.*/\1/p' <<<"$one")
rss2=$(sed -n 's/.*peak RSS\/rank \([0-9.]*\) MiB.*/\1/p' <<<"$two")
awk -v a="$tps1" -v b="$tps2" 'BEGIN { printf "%-26s %12.0f %12.0f %8.2f\n", "tokens/s", a, b, b / a }'
awk -v a="$arena1" -v b="$arena2" 'BEGIN { printf "%-26s %12.1f %12.1f %8.2f\n", "peak activations/rank MiB", a, b, b / a }'
awk -v a="$rss1" -v b="$rss2" 'BEGIN { printf "%-26s %12.1f %12.1f %8.2f\n", "peak RSS/rank MiB", a, b, b / a }'
