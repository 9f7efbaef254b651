"""PyTorch's eager softmax language model at the size of bench/bench_cuda_lm.c (d = 768, 12
blocks, 12 heads, vocab 32000, RMSNorm, SwiGLU, RoPE, causal SDPA, untied head): tokens/s and GPU
memory of whole training steps (forward, backward, clipping, fused AdamW), the median of 5 steps
after 2 warm-ups, at B = 8, T = 2048 and B = 2, T = 8192. In f32 (TF32 off, as hyla's f32) and
with bf16 autocast (the issue's reference). Memory: peak is torch.cuda.max_memory_allocated, held
max_memory_reserved.
Usage: python3 bench/reference/lm_torch.py [T ...]"""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from timing import median_ms

D, LAYERS, HEADS, VOCAB, TOKENS = 768, 12, 12, 32000, 8 * 2048


class OwnRMSNorm(nn.Module):  # for a PyTorch older than nn.RMSNorm (2.4)
    def __init__(self, d, eps):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


RMSNorm = getattr(nn, "RMSNorm", OwnRMSNorm)


def swiglu_hidden(d):  # 8/3 d rounded up to a multiple of 64, as hyla's default
    return (8 * d // 3 + 63) // 64 * 64


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.n1, self.n2 = RMSNorm(D, eps=1e-6), RMSNorm(D, eps=1e-6)
        self.qkv, self.o = nn.Linear(D, 3 * D, bias=False), nn.Linear(D, D, bias=False)
        h = swiglu_hidden(D)
        self.up, self.down = nn.Linear(D, 2 * h, bias=False), nn.Linear(h, D, bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        q, k, v = self.qkv(self.n1(x)).view(B, T, 3, HEADS, D // HEADS).unbind(2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                           v.transpose(1, 2), is_causal=True)
        x = x + self.o(a.transpose(1, 2).reshape(B, T, D))
        g, u = self.up(self.n2(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(g) * u)


def rope(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, D)
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.norm, self.head = RMSNorm(D, eps=1e-6), nn.Linear(D, VOCAB, bias=False)

    def forward(self, tokens):
        T, half = tokens.shape[1], D // HEADS // 2
        freq = 1e4 ** (-torch.arange(half, device=tokens.device) / half)
        angle = torch.arange(T, device=tokens.device)[:, None] * freq[None]
        cos, sin = angle.cos()[None, :, None], angle.sin()[None, :, None]
        x = self.embed(tokens)
        for b in self.blocks:
            x = b(x, cos, sin)
        return self.head(self.norm(x))


def measure(T, autocast):
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    B = TOKENS // T
    model = LM().cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1,
                            fused=True)
    tokens = torch.randint(0, VOCAB, (B, T), device="cuda")
    targets = torch.randint(0, VOCAB, (B, T), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            logits = model(tokens)
        loss = F.cross_entropy(logits.float().view(-1, VOCAB), targets.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    t = median_ms(step, warmups=2, reps=5) / 1e3
    peak = torch.cuda.max_memory_allocated() / 2**30
    held = torch.cuda.max_memory_reserved() / 2**30
    params = sum(p.numel() for p in model.parameters()) / 1e6
    name = f"torch softmax {'bf16 autocast' if autocast else 'f32'} {params:.0f}M"
    print(f"| {name:34} | {T:5} | {B:2} | {t * 1e3:9.1f} | {B * T / t:8.0f} | {peak:8.1f} | {held:8.1f} |",
          flush=True)
    del model, opt


lengths = [int(a) for a in sys.argv[1:]] or [2048, 8192]
for T in lengths:
    for autocast in (False, True):
        measure(T, autocast)
