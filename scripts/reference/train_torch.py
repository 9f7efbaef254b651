"""The model of bench/bench_train.c in PyTorch, for a side-by-side throughput reference.

d=128, 4 blocks of pre-norm causal softmax attention with rotate-half RoPE and a SwiGLU MLP
(hidden 384), RMSNorm, tied byte embeddings; AdamW. Prints one line like bench_train.

usage: python3 train_torch.py THREADS [STEPS]
"""
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

B, T, D, H, LAYERS, VOCAB, HIDDEN = 8, 256, 128, 4, 4, 256, 384


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x, theta=10000.0):  # x [B, T, H, Dh], rotate-half
    _, t, _, dh = x.shape
    half = dh // 2
    freq = theta ** (-torch.arange(half, dtype=torch.float64) * 2 / dh)
    ang = torch.arange(t, dtype=torch.float64)[:, None] * freq[None, :]
    cos, sin = ang.cos().float()[None, :, None, :], ang.sin().float()[None, :, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.n1, self.n2 = RMSNorm(D), RMSNorm(D)
        self.q, self.k, self.v, self.o = (nn.Linear(D, D, bias=False) for _ in range(4))
        self.gate, self.up = nn.Linear(D, HIDDEN, bias=False), nn.Linear(D, HIDDEN, bias=False)
        self.down = nn.Linear(HIDDEN, D, bias=False)
        self.register_buffer("mask", torch.full((T, T), float("-inf")).triu(1))

    def attn(self, x):
        b, t, _ = x.shape
        q = rope(self.q(x).view(b, t, H, D // H)).transpose(1, 2)
        k = rope(self.k(x).view(b, t, H, D // H)).transpose(1, 2)
        v = self.v(x).view(b, t, H, D // H).transpose(1, 2)
        s = q @ k.transpose(-1, -2) / math.sqrt(D // H) + self.mask[:t, :t]
        o = (s.softmax(-1) @ v).transpose(1, 2).reshape(b, t, D)
        return self.o(o)

    def forward(self, x):
        x = x + self.attn(self.n1(x))
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, D)
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.norm = RMSNorm(D)

    def forward(self, x):
        h = self.embed(x)
        for b in self.blocks:
            h = b(h)
        return self.norm(h) @ self.embed.weight.t()


def main():
    threads = int(sys.argv[1])
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # denormals slow x86 down; give PyTorch its best
    torch.manual_seed(0)
    model = Model()
    for name, p in model.named_parameters():  # hyla's init: normal(0, 0.02), norms at 1
        if p.dim() > 1:
            nn.init.normal_(p, 0.0, 0.02)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    tokens = torch.randint(0, VOCAB, (B, T + 1))
    x, y = tokens[:, :-1], tokens[:, 1:]

    def step():
        loss = F.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    params = sum(p.numel() for p in model.parameters())
    print(f"torch threads={threads}  params={params}  step {t * 1e3:.2f} ms  "
          f"{B * T / t:.0f} tokens/s  (loss {loss:.3f}, torch {torch.__version__})")


if __name__ == "__main__":
    main()
