"""flash-linear-attention's chunked GLA and lightning attention at the sizes of
bench/bench_cuda_gla.c, for the ratios scripts/gpu-check.sh prints: the median of 20 timed runs
after 3 warm-ups, with CUDA events, in f32 (TF32 off), the precision of hyla's kernels (fla's
bf16 kernels were still autotuning after 400 s on an H200, so they are not timed here). Gates
as hyla's bench makes them (logsigmoid / 16); lightning's decays those of the first of 12 layers.
fla comes from .gpu-deps/python (scripts/gpu-deps.sh); without it this prints a line and stops.
Usage: python3 bench/reference/linear_attention_torch.py [T]"""
import sys

import torch
import torch.nn.functional as F

from timing import median_ms

try:
    from fla.ops.gla import chunk_gla
    from fla.ops.lightning_attn import chunk_lightning_attn
except Exception as e:  # fla missing, or too new for this PyTorch
    print(f"(no flash-linear-attention here: {type(e).__name__}: {e}; no GLA or lightning reference)")
    sys.exit(0)

B = 8
T = int(sys.argv[1]) if len(sys.argv) > 1 else 2048
CHUNK = 64


def leaf(shape, dtype, scale=1.0):
    return (torch.randn(shape, device="cuda", dtype=torch.float32) * scale).to(dtype).requires_grad_()


def report(name, run, flops):
    def forward():
        with torch.no_grad():
            run()

    def both():
        o = run()
        o.backward(torch.ones_like(o))

    try:
        f, fb = median_ms(forward), median_ms(both)
    except Exception as e:  # a dtype this fla build does not take
        print(f"| {name} | n/a ({type(e).__name__}) | |")
        return
    print(f"| {name} forward {' ' * (20 - len(name))}| {f:10.3f} | {flops / f / 1e9:10.2f} |")
    print(f"| {name} fwd + bwd {' ' * (18 - len(name))}| {fb:10.3f} | {3 * flops / fb / 1e9:10.2f} |")


for dtype in (torch.float32,):
    tag = "f32" if dtype == torch.float32 else "bf16"
    H, dk, dv = 4, 128, 256
    q, k = leaf((B, T, H, dk), dtype, dk ** -0.5), leaf((B, T, H, dk), dtype)
    v = leaf((B, T, H, dv), dtype)
    g = (F.logsigmoid(torch.randn(B, T, H, dk, device="cuda")) / 16).to(dtype).requires_grad_()
    flops = B * H * T * (4 * dk * dv + CHUNK * (dk + dv))
    report(f"fla chunk_gla {tag}", lambda: chunk_gla(q, k, v, g)[0], flops)
    H, d = 16, 64
    q, k, v = leaf((B, T, H, d), dtype, d ** -0.5), leaf((B, T, H, d), dtype), leaf((B, T, H, d), dtype)
    flops = B * H * T * (4 * d * d + CHUNK * 2 * d)
    report(f"fla lightning {tag}", lambda: chunk_lightning_attn(q, k, v, layer_idx=0, num_layers=12)[0],
           flops)
