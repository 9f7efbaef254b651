"""hyla's MQAR recipe in PyTorch: the same model, data distribution, optimizer and schedule, to
tell a training problem of hyla's from the budget's. Prints the validation accuracy (the share of
queried values predicted exactly) at each evaluation, as `hyla train` does.

Model (layers/model.c): tied embeddings, pre-norm blocks of RMSNorm -> mixer -> residual and
RMSNorm -> SwiGLU MLP (hidden 8/3 d rounded up to 64) -> residual, final RMSNorm. Mixers: `attn`
(causal softmax attention, rotate-half RoPE) and `conv` (layers/conv.c: (x W) * (b + sum_i w_i
x_{t-i}), b = 1). Weights N(0, init_std), output projections N(0, init_std / sqrt(2 L)), norms 1.
AdamW (0.9, 0.95), weight decay 0.1 except norms, biases and the embedding; linear warm-up, then
cosine to 0.1 lr; gradient norm clipped at 1. Data (data/mqar.c): keys from [1, V/2), values from
[V/2, V), the context k v pairs first, each key queried once at a power-law slot, the label on the
query key's own position, random tokens elsewhere.

usage: python3 mqar_torch.py [--layers attn,attn] [--d 128] [--heads 4] [--lr 2.15e-3]
         [--steps 1000] [--batch 64] [--seq-len 256] [--pairs 16] [--vocab 8192]
         [--eval-every 250] [--untied] [--no-mlp] [--init-std 0.05] [--warmup 50] [--seed 0]
Runs on CUDA with bf16 autocast when a GPU is there, else on the CPU in f32.
"""
import argparse
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

IGNORE = -100


def mqar_examples(n, T, N, V, seed, power_a=0.01):
    """n examples as (inputs, targets) int64 arrays [n, T]."""
    rng = np.random.default_rng(seed)
    ctx, slots = 2 * N, (T - 2 * N) // 2
    p = power_a * np.arange(1, slots + 1, dtype=np.float64) ** (power_a - 1)
    p /= p.sum()
    x = rng.integers(0, V, size=(n, T))
    y = np.full((n, T), IGNORE)
    for e in range(n):
        keys = rng.choice(np.arange(1, V // 2), N, replace=False)
        values = rng.choice(np.arange(V // 2, V), N, replace=False)
        x[e, 0:ctx:2], x[e, 1:ctx:2] = keys, values
        pos = ctx + 2 * rng.choice(slots, N, replace=False, p=p)
        x[e, pos], y[e, pos] = keys, values
    return torch.from_numpy(x), torch.from_numpy(y)


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps).to(x.dtype) * self.weight


def rope(x, theta=10000.0):  # [B, T, H, Dh]
    t, dh = x.shape[1], x.shape[3]
    half = dh // 2
    freq = theta ** (-torch.arange(half, dtype=torch.float64, device=x.device) * 2 / dh)
    ang = torch.arange(t, dtype=torch.float64, device=x.device)[:, None] * freq[None, :]
    cos, sin = ang.cos().float()[None, :, None, :], ang.sin().float()[None, :, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.h = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.o.out_proj = True

    def forward(self, x):
        b, t, d = x.shape
        split = lambda z: z.view(b, t, self.h, d // self.h)
        q, k, v = rope(split(self.q(x))), rope(split(self.k(x))), split(self.v(x))
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if hasattr(F, "scaled_dot_product_attention"):
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # older PyTorch
            s = (q @ k.transpose(-1, -2)).float() / math.sqrt(d // self.h)
            s = s.masked_fill(torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
            o = s.softmax(-1).to(v.dtype) @ v
        return self.o(o.transpose(1, 2).reshape(b, t, d))


class Conv(nn.Module):
    def __init__(self, d, kernel=3):
        super().__init__()
        self.proj = nn.Linear(d, d, bias=False)
        self.proj.out_proj = True
        self.taps = nn.Parameter(torch.zeros(kernel, d))
        self.bias = nn.Parameter(torch.ones(d))

    def forward(self, x):
        z = self.bias + x * self.taps[0]
        for i in range(1, self.taps.shape[0]):
            z = z + F.pad(x, (0, 0, i, 0))[:, : x.shape[1]] * self.taps[i]
        return self.proj(x) * z


class Block(nn.Module):
    def __init__(self, kind, d, heads, mlp):
        super().__init__()
        self.n1 = RMSNorm(d)
        self.mixer = Attention(d, heads) if kind == "attn" else Conv(d)
        self.mlp = mlp
        if mlp:
            hidden = -(-int(math.ceil(8 / 3 * d)) // 64) * 64
            self.n2 = RMSNorm(d)
            self.gate, self.up = nn.Linear(d, hidden, bias=False), nn.Linear(d, hidden, bias=False)
            self.down = nn.Linear(hidden, d, bias=False)
            self.down.out_proj = True

    def forward(self, x):
        x = x + self.mixer(self.n1(x))
        if not self.mlp:
            return x
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(nn.Module):
    def __init__(self, a):
        super().__init__()
        kinds = a.layers.split(",")
        self.embed = nn.Embedding(a.vocab, a.d)
        self.blocks = nn.ModuleList(Block(k, a.d, a.heads, not a.no_mlp) for k in kinds)
        self.norm = RMSNorm(a.d)
        self.head = None if not a.untied else nn.Linear(a.d, a.vocab, bias=False)
        out_std = a.init_std / math.sqrt(2 * len(kinds))
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, out_std if getattr(m, "out_proj", False) else a.init_std)
            if isinstance(m, Conv):
                nn.init.normal_(m.taps, 0.0, a.init_std)

    def forward(self, x):
        h = self.embed(x)
        for b in self.blocks:
            h = b(h)
        h = self.norm(h)
        return self.head(h) if self.head is not None else h @ self.embed.weight.t()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", default="attn,attn")
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2.15e-3)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--train-examples", type=int, default=100000)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-examples", type=int, default=1024)
    ap.add_argument("--init-std", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--untied", action="store_true")
    ap.add_argument("--no-mlp", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(a.seed)
    t0 = time.time()
    xs, ys = mqar_examples(a.train_examples, a.seq_len, a.pairs, a.vocab, a.seed)
    xv, yv = mqar_examples(a.eval_examples, a.seq_len, a.pairs, a.vocab, a.seed + 10**6)
    xs, ys, xv, yv = xs.to(dev), ys.to(dev), xv.to(dev), yv.to(dev)
    model = Model(a).to(dev)
    decay = [p for n, p in model.named_parameters() if not any(s in n for s in ("norm", "bias", "embed"))]
    rest = [p for n, p in model.named_parameters() if any(s in n for s in ("norm", "bias", "embed"))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8)

    def lr_at(step):
        if step <= a.warmup:
            return a.lr * step / a.warmup
        p = min(1.0, (step - a.warmup) / max(1, a.steps - a.warmup))
        return 0.1 * a.lr + 0.9 * a.lr * 0.5 * (1 + math.cos(math.pi * p))

    amp = torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == "cuda")
    gen = torch.Generator(device="cpu").manual_seed(a.seed)
    print(f"mqar_torch {a.layers} d={a.d} lr={a.lr:g} on {dev}, data in {time.time() - t0:.1f} s", flush=True)
    t0 = time.time()
    for step in range(1, a.steps + 1):
        idx = torch.randint(0, a.train_examples, (a.batch,), generator=gen).to(dev)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        with amp:
            logits = model(xs[idx])
        loss = F.cross_entropy(logits.float().reshape(-1, a.vocab), ys[idx].reshape(-1), ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % a.eval_every == 0 or step == a.steps:
            with torch.no_grad(), amp:
                correct = total = 0
                vloss = 0.0
                for i in range(0, a.eval_examples, a.batch):
                    lv = model(xv[i : i + a.batch]).float()
                    yb = yv[i : i + a.batch]
                    mask = yb != IGNORE
                    vloss += F.cross_entropy(lv[mask], yb[mask], reduction="sum").item()
                    correct += (lv.argmax(-1)[mask] == yb[mask]).sum().item()
                    total += mask.sum().item()
            print(f"step {step}: loss {loss.item():.4f}, val loss {vloss / total:.4f}, accuracy "
                  f"{correct / total:.4f} ({time.time() - t0:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
