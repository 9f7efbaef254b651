#!/usr/bin/env bash
# Training throughput of hyla beside the same model in PyTorch (Debian's python3-torch, CPU), at
# 1 and 2 threads, in one run: d=128, 4 layers, 4 heads, T=256, B=8, byte vocabulary, AdamW.
#   scripts/bench_train.sh [BUILD_DIR]      (default build/)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
[ -x "$build/bench_train" ] || { echo "bench_train.sh: build first ($build/bench_train missing)" >&2; exit 1; }
py=/usr/bin/python3
"$py" -c 'import torch' 2>/dev/null || { echo "bench_train.sh: needs python3-torch (scripts/setup.sh --reference)" >&2; exit 1; }

declare -A tps
for threads in 1 2; do
  h=$("$build/bench_train" "$threads" 30 | tee /dev/stderr | sed -n 's/.* \([0-9]*\) tokens\/s.*/\1/p')
  # torch.set_num_threads alone: PyTorch ran slower here with OMP_NUM_THREADS set as well.
  t=$("$py" scripts/reference/train_torch.py "$threads" 30 | tee /dev/stderr |
      sed -n 's/.* \([0-9]*\) tokens\/s.*/\1/p')
  tps[hyla$threads]=$h
  tps[torch$threads]=$t
done
best_torch=$(( tps[torch1] > tps[torch2] ? tps[torch1] : tps[torch2] ))
echo
printf '%-8s %14s %14s\n' threads "hyla tok/s" "torch tok/s"
for threads in 1 2; do printf '%-8s %14s %14s\n' "$threads" "${tps[hyla$threads]}" "${tps[torch$threads]}"; done
best_hyla=$(( tps[hyla1] > tps[hyla2] ? tps[hyla1] : tps[hyla2] ))
awk -v h="$best_hyla" -v t="$best_torch" 'BEGIN { printf "best hyla / best torch: %.2f (goal >= 1.5)\n", h / t }'
echo "OpenBLAS kernels: ${OPENBLAS_CORETYPE:-as detected, or as bench_train picked (printed above)}"
