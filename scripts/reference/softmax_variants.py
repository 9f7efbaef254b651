"""Golden fixtures for hyla's softmax-family variant layers (sigmoid, softplus, sla), from an
independent PyTorch implementation written from the papers' math, float64, in the plainest form:
the full score matrix, masked.

    sigmoid   o_t = sum_{s<=t} sigmoid(q_t.k_s / sqrt(dh) + b) v_s, b = -log(n); RMSNorm per head
              on o (Ramapuram et al. 2024, "Theory, Analysis, and Best Practices for Sigmoid
              Self-Attention")
    softplus  w_ts = softplus(c_t q_t.k_s / sqrt(dh))^p for s <= t, c_t = log(t + 1) / log(L_train)
              (t from 0), o_t = sum_s w_ts v_s / sum_s w_ts ("Softplus Attention with Re-weighting
              Boosts Length Extrapolation", LSSA / LSSAR)
    sla       blocks of b queries and keys; query block i ranks its earlier key blocks j < i by
              mean(q_{i-1}).mean(k_j), the PREVIOUS query block's mean (ties to the lower j), so
              the choice reads only tokens before block i and the layer is causal: the top
              ceil(kh i) and the diagonal block are critical, the bottom floor(kl i) (never a
              critical one) negligible, the rest marginal; block 0 has only its diagonal.
              o_s = softmax attention over the critical keys (causal), o_l = linear attention
              over the marginal keys with phi = softmax over the features (and 1e-5 in the
              denominator), o = o_s + proj_l(o_l) per head (SLA, Zhang et al. 2025; proj_l as
              thu-ml/SLA's SparseLinearAttention)

Every layer uses the projections and RoPE of the softmax layer (layers.py's Attention). The file
format, sizes, parameter draws and names are layers.py's (this script runs its `generate` on
these layers); tests/layers/test_fixtures.c checks hyla against tests/fixtures/<kind>.h5.

usage: /usr/bin/python3 scripts/reference/softmax_variants.py   (python3-torch, python3-h5py)
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import layers  # noqa: E402  (the fixture format and the softmax layer's projections)
from layers import Attention, D, H, heads, rms_norm  # noqa: E402

SIGMOID_N = 16  # the n of b = -log(n): the training length
SOFTPLUS_TRAIN_LEN, SOFTPLUS_POWER = 8, 1.7  # c_t passes 1 inside the fixture's 13 tokens
SLA_BLOCK, SLA_CRITICAL, SLA_NEGLIGIBLE = 3, 0.3, 0.4  # 5 blocks, the last of one token


class VariantBase(Attention):
    """q, k, v [B, H, T, dh] as the softmax layer makes them; the subclass mixes them."""

    def qkv(self, x):
        q = self.rope(heads(self.q_proj(x), self.h)).transpose(1, 2)
        k = self.rope(heads(self.k_proj(x), self.h)).transpose(1, 2)
        v = heads(self.v_proj(x), self.h).transpose(1, 2)
        return q, k, v

    def causal(self, t_len):
        return torch.tril(torch.ones(t_len, t_len, dtype=torch.float64))

    def out(self, o):  # o [B, H, T, dh]
        b, _, t_len, _ = o.shape
        return self.o_proj(o.transpose(1, 2).reshape(b, t_len, -1))


class Sigmoid(VariantBase):
    def __init__(self, d, n_heads, n, norm_eps):
        super().__init__(d, n_heads, 10000.0)
        self.bias, self.eps = -math.log(n), norm_eps
        self.norm = nn.Module()
        self.norm.weight = nn.Parameter(torch.ones(self.dh))

    def forward(self, x):
        q, k, v = self.qkv(x)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.dh) + self.bias
        o = (torch.sigmoid(scores) * self.causal(x.shape[1])) @ v
        return self.out(rms_norm(o, self.norm.weight, self.eps))


class Softplus(VariantBase):
    def __init__(self, d, n_heads, train_len, power):
        super().__init__(d, n_heads, 10000.0)
        self.train_len, self.power = train_len, power

    def forward(self, x):
        q, k, v = self.qkv(x)
        t_len = x.shape[1]
        c = torch.log(torch.arange(1, t_len + 1, dtype=torch.float64)) / math.log(self.train_len)
        scores = c[:, None] * (q @ k.transpose(-1, -2)) / math.sqrt(self.dh)
        w = F.softplus(scores).pow(self.power) * self.causal(t_len)
        return self.out((w / w.sum(-1, keepdim=True)) @ v)


def sla_classes(q, k, block, critical, negligible):
    """[B, H, nb, nb] of 3 (critical), 2 (marginal), 1 (negligible), 0 (after the query block)."""
    b, h, t_len, _ = q.shape
    nb = -(-t_len // block)
    pq = torch.stack([q[:, :, i * block:(i + 1) * block].mean(2) for i in range(nb)], 2)
    pk = torch.stack([k[:, :, j * block:(j + 1) * block].mean(2) for j in range(nb)], 2)
    # score[.., p, j] = mean(q_p).mean(k_j); query block i (> 0) reads row p = i - 1: every token
    # of query block i - 1 and of key blocks j < i comes before the first token of block i.
    score = pq @ pk.transpose(-1, -2)  # [B, H, nb, nb]
    cls = torch.zeros(b, h, nb, nb, dtype=torch.long)
    for bi in range(b):
        for hi in range(h):
            for i in range(nb):
                cls[bi, hi, i, i] = 3
                # best first; equal scores: the lower j first (a stable sort of -score)
                order = sorted(range(i), key=lambda j: (-score[bi, hi, i - 1, j].item(), j))
                n_crit = math.ceil(critical * i)
                n_negl = min(math.floor(negligible * i), i - n_crit)
                for rank, j in enumerate(order):
                    cls[bi, hi, i, j] = 3 if rank < n_crit else (1 if rank >= i - n_negl else 2)
    return cls


class SLA(VariantBase):
    def __init__(self, d, n_heads, block, critical, negligible):
        super().__init__(d, n_heads, 10000.0)
        self.block, self.critical, self.negligible = block, critical, negligible
        self.proj_l = nn.Linear(self.dh, self.dh)  # zero at init in hyla; drawn here

    def forward(self, x):
        q, k, v = self.qkv(x)
        t_len = x.shape[1]
        with torch.no_grad():
            cls = sla_classes(q, k, self.block, self.critical, self.negligible)
        pos = torch.arange(t_len) // self.block
        per_token = cls[:, :, pos][:, :, :, pos]  # [B, H, T, T]: class of key s for query t
        causal = self.causal(t_len).bool()
        exact = (per_token == 3) & causal
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.dh)
        o_s = torch.softmax(scores.masked_fill(~exact, float("-inf")), -1) @ v
        a = (torch.softmax(q, -1) @ torch.softmax(k, -1).transpose(-1, -2)) * (per_token == 2)
        o_l = (a @ v) / (a.sum(-1, keepdim=True) + 1e-5)
        return self.out(o_s + self.proj_l(o_l))


VARIANTS = {
    "sigmoid": (105, lambda: Sigmoid(D, H, SIGMOID_N, 1e-5),
                {"bias_n": SIGMOID_N, "output_norm": 1, "norm_eps": 1e-5}),
    "softplus": (106, lambda: Softplus(D, H, SOFTPLUS_TRAIN_LEN, SOFTPLUS_POWER),
                 {"train_len": SOFTPLUS_TRAIN_LEN, "power": SOFTPLUS_POWER}),
    "sla": (107, lambda: SLA(D, H, SLA_BLOCK, SLA_CRITICAL, SLA_NEGLIGIBLE),
            {"block": SLA_BLOCK, "critical": SLA_CRITICAL, "negligible": SLA_NEGLIGIBLE,
             "feature_map": "softmax"}),
}


def main():
    os.makedirs(layers.OUT_DIR, exist_ok=True)
    layers.LAYERS.update(VARIANTS)  # layers.generate looks kinds up there
    for kind in VARIANTS:
        layers.generate(kind)


if __name__ == "__main__":
    main()
