#!/usr/bin/env bash
# scripts/gpu-ratios.py on tests/fixtures/gpu-bench.log (a GPU check's bench log, hyla's rows named
# "bf16 matmuls", PyTorch's eager softmax references only) and on a made-up log in the format of
# today's bench/reference/lm_torch.py (hyla's rows named "bf16"; eager and compiled references of
# every model, a failed one among them): every pair of hyla and reference rows is found, and the
# ratios and verdicts are the ones computed by hand.
#   tests/scripts/gpu_ratios.sh python3
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
status=0
run() {
  out=$("$1" "$root/scripts/gpu-ratios.py" "$2") || {
    echo "FAIL: gpu-ratios.py exited with $? on $2"
    status=1
  }
}
expect() {
  grep -qF -- "$1" <<<"$out" || {
    echo "FAIL: no line with: $1"
    status=1
  }
}
count() { # count WHAT PATTERN N
  local n
  n=$(grep -cE -- "$2" <<<"$out")
  [ "$n" = "$3" ] || {
    echo "FAIL: $n $1 rows, expected $3"
    status=1
  }
}

run "$1" "$root/tests/fixtures/gpu-bench.log"
# Kernels, against 2x: 0.378 / 0.215 = 1.76; 1.814 / 0.903 = 2.01 (over); 2.419 / 2.030 = 1.19
expect "| attention forward, bf16 | 0.378 ms | 0.215 ms (PyTorch SDPA bf16) | 1.76 | yes |"
expect "| attention forward + backward, bf16 | 1.814 ms | 0.903 ms (PyTorch SDPA bf16) | 2.01 | NO |"
expect "| gla forward + backward, f32 | 2.419 ms | 2.030 ms (issue's fla bf16, H100) | 1.19 | yes |"
expect "| lightning forward + backward, f32 | 1.538 ms | 1.625 ms (fla f32) | 0.95 | yes |"
count kernel "^\| (attention|gla|lightning) forward.*\| (yes|NO) \|$" 11 # 5 attention, 6 GLA and lightning
# LMs, against 1.0: tokens/s 180061 / 286934 = 0.63; peak 23.0 / 15.1 = 1.52; 180061 / 240000 = 0.75
expect "| softmax | 2048 | hyla bf16 | PyTorch eager, bf16 autocast | 180.1k / 286.9k | 0.63 | NO | 23.0 / 15.1 | 1.52 | NO |"
expect "| softmax | 2048 | hyla bf16 | issue's PyTorch bf16, H100 (240k tokens/s) | 180.1k / 240k | 0.75 | NO |"
# f32: 28405 / 32443 = 0.88; 20.9 / 21.1 = 0.99
expect "| softmax | 8192 | hyla f32 | PyTorch eager, f32 | 28.4k / 32.4k | 0.88 | NO | 20.9 / 21.1 | 0.99 | yes |"
# hyla's GLA models have no reference of their own in this log (no longer PyTorch's softmax)
expect "| pure gla | 8192 | hyla bf16 | (no reference in this log) |"
count LM "^\| (softmax|3:1 gla/attn|pure gla) \| " 11 # 4 pairs, 3 against the issue, 4 with none

log=$(mktemp)
trap 'rm -f "$log"' EXIT
cat >"$log" <<'LOG'
134M-parameter LM training steps, f32 or bf16 matmuls, 16384 tokens per step, median of 5 after 2 warm-ups
| model                              |     T |  B |   step ms | tokens/s | peak GiB | held GiB |
| hyla softmax bf16 134M             |  2048 |  8 |      80.0 |   204800 |     20.0 |     21.0 |
| hyla 3:1 gla/attn bf16 134M        |  2048 |  8 |     100.0 |   163840 |     18.0 |     19.0 |
| hyla pure gla bf16 134M            |  2048 |  8 |     109.2 |   150000 |     16.0 |     17.0 |
| hyla softmax bf16 134M             |  8192 |  2 |     136.5 |   120000 |     20.0 |     21.0 |
| hyla 3:1 gla/attn bf16 134M        |  8192 |  2 |     100.0 |   163840 |     18.0 |     19.0 |
| hyla pure gla bf16 134M            |  8192 |  2 |     109.2 |   150000 |     16.0 |     17.0 |
PyTorch 2.11.0 LM training steps (eager, compile; GLA by fla-core 0.6.0, Triton 3.6.0), 16384 tokens per step, median of 5 after 2 warm-ups
(compile with fla: fla marks chunk_gla torch.compiler.disable: its kernels run eagerly between the compiled graphs)
| torch softmax bf16 autocast 134M   |  2048 |  8 |      64.0 |   256000 |     16.0 |     17.0 |
| torch softmax compile bf16 autocast 134M |  2048 |  8 |      51.2 |   320000 |     10.0 |     12.0 |
| torch+fla 3:1 gla/attn bf16 autocast 134M |  2048 |  8 |     100.0 |   163840 |     20.0 |     21.0 |
| torch+fla 3:1 gla/attn compile bf16 autocast 134M |  2048 |  8 |       n/a |      n/a |      n/a |      n/a | BackendCompilerFailed: backend='inductor' raised |
| torch+fla pure gla bf16 autocast 134M |  2048 |  8 |     131.1 |   125000 |     16.0 |     17.0 |
| torch+fla pure gla compile bf16 autocast 134M |  2048 |  8 |      81.9 |   200000 |     12.8 |     14.0 |
| torch softmax bf16 autocast 134M   |  8192 |  2 |      81.9 |   200000 |     16.0 |     17.0 |
| torch softmax compile bf16 autocast 134M |  8192 |  2 |      65.5 |   250000 |     12.5 |     13.0 |
| torch+fla pure gla bf16 autocast 134M |  8192 |  2 |     131.1 |   125000 |     20.0 |     21.0 |
| torch+fla pure gla compile bf16 autocast 134M |  8192 |  2 |       n/a |      n/a |      n/a |      n/a | OutOfMemoryError: CUDA out of memory |
LOG
run "$1" "$log"
# 204800 / 256000 = 0.80, 20 / 16 = 1.25; 204800 / 320000 = 0.64, 20 / 10 = 2.00
expect "| softmax | 2048 | hyla bf16 | PyTorch eager, bf16 autocast | 204.8k / 256.0k | 0.80 | NO | 20.0 / 16.0 | 1.25 | NO |"
expect "| softmax | 2048 | hyla bf16 | PyTorch compile, bf16 autocast | 204.8k / 320.0k | 0.64 | NO | 20.0 / 10.0 | 2.00 | NO |"
# 163840 / 163840 = 1.00 and 18 / 20 = 0.90 both pass; the failed compile shows why
expect "| 3:1 gla/attn | 2048 | hyla bf16 | PyTorch + fla chunk_gla eager, bf16 autocast | 163.8k / 163.8k | 1.00 | yes | 18.0 / 20.0 | 0.90 | yes |"
expect "| 3:1 gla/attn | 2048 | hyla bf16 | PyTorch + fla chunk_gla compile, bf16 autocast | n/a (BackendCompilerFailed: backend='inductor' raised) | n/a | n/a |"
# 150000 / 125000 = 1.20, 16 / 16 = 1.00; 150000 / 200000 = 0.75, 16 / 12.8 = 1.25
expect "| pure gla | 2048 | hyla bf16 | PyTorch + fla chunk_gla eager, bf16 autocast | 150.0k / 125.0k | 1.20 | yes | 16.0 / 16.0 | 1.00 | yes |"
expect "| pure gla | 2048 | hyla bf16 | PyTorch + fla chunk_gla compile, bf16 autocast | 150.0k / 200.0k | 0.75 | NO | 16.0 / 12.8 | 1.25 | NO |"
# 120000 / 250000 = 0.48, 20 / 12.5 = 1.60; 150000 / 125000 = 1.20, 16 / 20 = 0.80
expect "| softmax | 8192 | hyla bf16 | PyTorch compile, bf16 autocast | 120.0k / 250.0k | 0.48 | NO | 20.0 / 12.5 | 1.60 | NO |"
expect "| pure gla | 8192 | hyla bf16 | PyTorch + fla chunk_gla eager, bf16 autocast | 150.0k / 125.0k | 1.20 | yes | 16.0 / 20.0 | 0.80 | yes |"
expect "| pure gla | 8192 | hyla bf16 | PyTorch + fla chunk_gla compile, bf16 autocast | n/a (OutOfMemoryError: CUDA out of memory) |"
expect "| 3:1 gla/attn | 8192 | hyla bf16 | (no reference in this log) |"
expect "| 3:1 gla/attn | 2048 | hyla bf16 | issue's PyTorch bf16, H100 (240k tokens/s) | 163.8k / 240k | 0.68 | NO |"
count kernel "^\| (attention|gla|lightning) forward.*\| (yes|NO) \|$" 0
# 10 pairs (2 of them n/a), 3 against the issue, 1 with none
count LM "^\| (softmax|3:1 gla/attn|pure gla) \| " 14

[ $status = 0 ] && echo "gpu-ratios: all pairs found"
exit $status
