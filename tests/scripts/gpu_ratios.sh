#!/usr/bin/env bash
# scripts/gpu-ratios.py on tests/fixtures/gpu-bench.log (a GPU check's bench log): every pair of
# hyla and reference rows is found, and the ratios and verdicts are the ones computed by hand.
#   tests/scripts/gpu_ratios.sh python3
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$("$1" "$root/scripts/gpu-ratios.py" "$root/tests/fixtures/gpu-bench.log") || {
  echo "FAIL: gpu-ratios.py exited with $?"
  exit 1
}
status=0
expect() {
  grep -qF -- "$1" <<<"$out" || {
    echo "FAIL: no line with: $1"
    status=1
  }
}
# 0.378 / 0.215 = 1.76; 1.814 / 0.903 = 2.01 (over the target); 2.419 / 2.030 = 1.19
expect "| attention forward, bf16 | 0.378 ms | 0.215 ms (PyTorch SDPA bf16) | 1.76 | yes |"
expect "| attention forward + backward, bf16 | 1.814 ms | 0.903 ms (PyTorch SDPA bf16) | 2.01 | NO |"
expect "| gla forward + backward, f32 | 2.419 ms | 2.030 ms (issue's fla bf16, H100) | 1.19 | yes |"
expect "| lightning forward + backward, f32 | 1.538 ms | 1.625 ms (fla f32) | 0.95 | yes |"
# tokens/s: 286934 / 180061 = 1.59; peak 23.0 / 15.1 = 1.52; 240000 / 180061 = 1.33
expect "| softmax LM, bf16 matmuls, T = 2048: tokens/s | 180.1k | 286.9k (PyTorch softmax bf16 autocast) | 1.59 | yes |"
expect "| softmax LM, bf16 matmuls, T = 2048: peak GiB | 23.0 | 15.1 | 1.52 | yes |"
expect "| softmax LM, bf16 matmuls, T = 2048: tokens/s | 180.1k | 240k (issue's, H100) | 1.33 | yes |"
expect "| pure gla LM, f32, T = 8192: tokens/s | 55.2k | 32.4k (PyTorch softmax f32) | 0.59 | yes |"
rows=$(grep -cE "\| (yes|NO) \|$" <<<"$out")
[ "$rows" = 38 ] || {
  echo "FAIL: $rows rows, expected 38 (5 attention, 6 GLA and lightning, 12 model rows x 2, 3 against the issue)"
  status=1
}
[ $status = 0 ] && echo "gpu-ratios: all pairs found"
exit $status
