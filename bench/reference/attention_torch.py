"""PyTorch's causal scaled_dot_product_attention at the size of bench/bench_cuda_attention.c, for
the ratio scripts/gpu-check.sh prints: the median of 20 timed runs after 3 warm-ups, with CUDA
events, in f32 (TF32 off, as hyla's f32 kernels) and in bf16.
Usage: python3 bench/reference/attention_torch.py [T]"""
import sys

import torch
import torch.nn.functional as F

from timing import median_ms

B, H, D = 8, 16, 64
T = int(sys.argv[1]) if len(sys.argv) > 1 else 2048

flops = 4 * B * H * T * T * D / 2
for dtype in (torch.float32, torch.bfloat16):
    q, k, v = (torch.randn(B, H, T, D, device="cuda", dtype=dtype, requires_grad=True)
               for _ in range(3))
    go = torch.randn(B, H, T, D, device="cuda", dtype=dtype)

    def forward():
        with torch.no_grad():
            F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def both():
        F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(go)

    f, fb = median_ms(forward), median_ms(both)
    name = "f32" if dtype == torch.float32 else "bf16"
    print(f"| torch sdpa {name:4} forward            | {f:10.3f} | {flops / f / 1e9:10.2f} |")
    print(f"| torch sdpa {name:4} forward + backward | {fb:10.3f} | {3.5 * flops / fb / 1e9:10.2f} |")
