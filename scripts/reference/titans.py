"""Golden fixtures for hyla's Titans layers ("titans_mal", "titans_mag", "titans_mac"), from an
independent PyTorch implementation in float64.

The neural memory is written in its plainest form: a Python loop over tokens. Each token's inner
gradient is taken by torch.autograd.grad (create_graph=True, so the outer backward goes through
every inner update) of theta_t ||M(k_t) - v_t||^2 at the weights its chunk started with (in the
weights alone, the input held fixed); the chunk's gradients are summed, and when the chunk completes

    S = eta S - U,    M = (1 - alpha) M + S          (eta, alpha from the chunk's mean input)

Token t reads y_t = M(q_t) with the weights after every chunk that ends at or before t. The
attention is masked softmax over [persistent keys; the last `window` keys], RoPE on q and k only.

    titans_mal: out = Attn(Memory(x))
    titans_mag: out = RMSNorm(Attn(x); g_a) * sigmoid(RMSNorm(Memory(x); g_m))
    titans_mac: per segment of `segment` tokens, with M_prev the memory (weights and momentum)
                after the segments before:  h = Read(M_prev; x_seg)  (no update),
                y = Attn(x_seg; keys/values [persistent; h_0..j; x_0..j] for query j, h_i and x_i
                rotated at token i's position, nothing from earlier segments),
                u = RMSNorm(y; g_i), z = Memory(u) continuing from M_prev (q, k, v, theta,
                eta, alpha and the read all from u), out = y * sigmoid(RMSNorm(z; g_m)),
                g_i and g_m the gains memory_input_norm/weight and memory_norm/weight

The MAC fixture: a 2-layer memory, segment 8 (two memory chunks), T = 13 (the last segment
partial), the momentum carried from segment to segment.

Shapes, seeds and the file layout are those of scripts/reference/layers.py, whose helpers this
script imports (rms_norm, heads, Attention, generate, write_h5).

usage: /usr/bin/python3 scripts/reference/titans.py   (Debian's python3-torch and python3-h5py)
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import layers  # noqa: E402  (sets float64 as the default dtype)
from layers import Attention, heads, rms_norm  # noqa: E402

# The memory's options (the attention has layers.H heads of layers.D / layers.H).
OPTIONS = {"chunk": 4, "memory_heads": 2, "expansion": 1.5, "lr_max": 0.5, "window": 4,
           "persistent": 2, "rope_theta": 10000.0, "norm_eps": 1e-5}


def l2norm(z):
    return z / torch.sqrt((z * z).sum(-1, keepdim=True) + 1e-12)


class Memory(nn.Module):
    """The neural memory: an MLP of `depth` layers per head, trained token by token."""

    def __init__(self, d, n_heads, depth, expansion, chunk, lr_max):
        super().__init__()
        self.h, self.dh, self.depth, self.chunk, self.lr_max = n_heads, d // n_heads, depth, chunk, lr_max
        self.w_q = nn.Linear(d, d, bias=False)
        self.w_k = nn.Linear(d, d, bias=False)
        self.w_v = nn.Linear(d, d, bias=False)
        self.w_eta = nn.Linear(d, n_heads)
        self.w_theta = nn.Linear(d, n_heads)
        self.w_alpha = nn.Linear(d, n_heads)
        self.o_proj = nn.Linear(d, d, bias=False)
        if depth == 1:
            self.m0_1 = nn.Parameter(torch.zeros(n_heads, self.dh, self.dh))
        else:
            hidden = int(expansion * self.dh)
            self.m0_1 = nn.Parameter(torch.zeros(n_heads, self.dh, hidden))
            self.m0_2 = nn.Parameter(torch.zeros(n_heads, hidden, self.dh))

    def apply_memory(self, w, z):
        """M(z) for z [B, H, D] with per-sequence weights w (each [B, H, ., .])."""
        if self.depth == 1:
            return torch.einsum("bhi,bhij->bhj", z, w[0])
        a = F.silu(torch.einsum("bhi,bhij->bhj", z, w[0]))
        return torch.einsum("bhi,bhij->bhj", a, w[1])

    def initial(self, b):
        """(M_0 for each of b sequences, zero momentum)."""
        m0 = [self.m0_1] if self.depth == 1 else [self.m0_1, self.m0_2]
        w = [p.unsqueeze(0).expand(b, *p.shape) for p in m0]
        return w, [torch.zeros_like(p) for p in w]

    def read(self, x, w):
        """The memory at weights w read with x's queries, no update: [B, T, d]."""
        b, t_len, d = x.shape
        q = l2norm(heads(F.silu(self.w_q(x)), self.h))
        out = [self.apply_memory(w, q[:, t]) for t in range(t_len)]
        return self.o_proj(torch.stack(out, dim=1).reshape(b, t_len, d))

    def forward(self, x, state=None):
        """Memory(x) from M_0; with state = (w, s) from those weights and momentum instead, and
        then (output, (w, s) after the last complete chunk) back. x starts a chunk."""
        b, t_len, d = x.shape
        q = l2norm(heads(F.silu(self.w_q(x)), self.h))  # [B, T, H, D]
        k = l2norm(heads(F.silu(self.w_k(x)), self.h))
        v = heads(F.silu(self.w_v(x)), self.h)
        theta = self.lr_max * torch.sigmoid(self.w_theta(x))  # [B, T, H]
        w, s = self.initial(b) if state is None else state
        u = [torch.zeros_like(p) for p in w]
        out = []
        for t in range(t_len):
            # The gradient in the weights alone, through a fresh alias of them: in MAC the input
            # itself depends on the weights (through the read-out), and that path is not the
            # memory's gradient.
            wt = [wi.view_as(wi) for wi in w]
            err = self.apply_memory(wt, k[:, t]) - v[:, t]
            loss = (theta[:, t] * (err * err).sum(-1)).sum()  # sequences and heads are independent
            g = torch.autograd.grad(loss, wt, create_graph=True)
            u = [ui + gi for ui, gi in zip(u, g)]
            if (t + 1) % self.chunk == 0:  # the chunk is complete: one update of the memory
                xbar = x[:, t + 1 - self.chunk:t + 1].mean(1)  # [B, d]
                eta = torch.sigmoid(self.w_eta(xbar))[:, :, None, None]
                alpha = torch.sigmoid(self.w_alpha(xbar))[:, :, None, None]
                s = [eta * si - ui for si, ui in zip(s, u)]
                w = [(1 - alpha) * wi + si for wi, si in zip(w, s)]
                u = [torch.zeros_like(p) for p in w]
            out.append(self.apply_memory(w, q[:, t]))  # [B, H, D]
        y = self.o_proj(torch.stack(out, dim=1).reshape(b, t_len, d))
        return y if state is None else (y, (w, s))


class WindowAttention(Attention):
    """Causal softmax attention over the last `window` keys plus `persistent` learned key/value
    pairs per head that every query sees (no RoPE on them)."""

    def __init__(self, d, n_heads, rope_theta, window, persistent):
        super().__init__(d, n_heads, rope_theta)
        self.window = window
        self.persistent_k = nn.Parameter(torch.zeros(persistent, n_heads, d // n_heads))
        self.persistent_v = nn.Parameter(torch.zeros(persistent, n_heads, d // n_heads))

    def forward(self, x):
        b, t_len, _ = x.shape
        q = self.rope(heads(self.q_proj(x), self.h))  # [B, T, H, dh]
        k = self.rope(heads(self.k_proj(x), self.h))
        v = heads(self.v_proj(x), self.h)
        n = self.persistent_k.shape[0]
        keys = torch.cat([self.persistent_k.expand(b, -1, -1, -1), k], dim=1)  # [B, n + T, H, dh]
        values = torch.cat([self.persistent_v.expand(b, -1, -1, -1), v], dim=1)
        scores = torch.einsum("bthd,bshd->bhts", q, keys) / math.sqrt(self.dh)
        t = torch.arange(t_len)[:, None]
        s = torch.arange(t_len)[None, :]
        hidden = (s > t) | (t - s >= self.window)  # [T, T]
        hidden = torch.cat([torch.zeros(t_len, n, dtype=torch.bool), hidden], dim=1)
        p = torch.softmax(scores.masked_fill(hidden, float("-inf")), dim=-1)
        o = torch.einsum("bhts,bshd->bthd", p, values).reshape(b, t_len, -1)
        return self.o_proj(o)


class Gain(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))


class Titans(nn.Module):
    def __init__(self, gate, depth):
        super().__init__()
        o, d = OPTIONS, layers.D
        self.gate, self.eps = gate, o["norm_eps"]
        self.memory = Memory(d, o["memory_heads"], depth, o["expansion"], o["chunk"], o["lr_max"])
        self.attn = WindowAttention(d, layers.H, o["rope_theta"], o["window"], o["persistent"])
        if gate:
            self.attn_norm = Gain(d)
            self.memory_norm = Gain(d)

    def forward(self, x):
        m = self.memory(x)
        if not self.gate:
            return self.attn(m)
        a = self.attn(x)
        return rms_norm(a, self.attn_norm.weight, self.eps) * torch.sigmoid(
            rms_norm(m, self.memory_norm.weight, self.eps))


class ContextAttention(Attention):
    """MAC's attention inside one segment, query by query: token j of the segment attends to the
    `persistent` learned keys/values (no RoPE), the memory read-outs h_0 .. h_j and the segment's
    tokens x_0 .. x_j; h_i and x_i are rotated at token i's absolute position."""

    def __init__(self, d, n_heads, rope_theta, persistent):
        super().__init__(d, n_heads, rope_theta)
        self.persistent_k = nn.Parameter(torch.zeros(persistent, n_heads, d // n_heads))
        self.persistent_v = nn.Parameter(torch.zeros(persistent, n_heads, d // n_heads))

    def rope_from(self, z, start):
        """self.rope at positions start, start + 1, ... (zero rows in front, then dropped)."""
        front = torch.zeros(z.shape[0], start, *z.shape[2:])
        return self.rope(torch.cat([front, z], dim=1))[:, start:]

    def forward(self, x, h, start):
        """x, h [B, n, d], the segment's tokens and read-outs at positions start .. start + n - 1."""
        b, n, _ = x.shape
        q = self.rope_from(heads(self.q_proj(x), self.h), start)  # [B, n, H, dh]
        kx = self.rope_from(heads(self.k_proj(x), self.h), start)
        vx = heads(self.v_proj(x), self.h)
        kh = self.rope_from(heads(self.k_proj(h), self.h), start)
        vh = heads(self.v_proj(h), self.h)
        pk = self.persistent_k.expand(b, -1, -1, -1)  # [B, P, H, dh]
        pv = self.persistent_v.expand(b, -1, -1, -1)
        out = []
        for j in range(n):
            keys = torch.cat([pk, kh[:, :j + 1], kx[:, :j + 1]], dim=1)  # [B, P + 2(j + 1), H, dh]
            values = torch.cat([pv, vh[:, :j + 1], vx[:, :j + 1]], dim=1)
            scores = torch.einsum("bhd,bshd->bhs", q[:, j], keys) / math.sqrt(self.dh)
            p = torch.softmax(scores, dim=-1)
            out.append(torch.einsum("bhs,bshd->bhd", p, values).reshape(b, -1))
        return self.o_proj(torch.stack(out, dim=1))


class TitansMAC(nn.Module):
    """Memory as context: segment by segment, the memory's weights and momentum carried on.
    h = Read(M_prev; x_seg), y = Attn(x_seg; [persistent; h; x_seg]), u = RMSNorm(y; g_i),
    z = Memory(u) continuing from (M_prev, S_prev), out = y * sigmoid(RMSNorm(z; g_m))."""

    def __init__(self, depth, segment, lr_max):
        super().__init__()
        o, d = OPTIONS, layers.D
        self.segment, self.eps = segment, o["norm_eps"]
        self.memory = Memory(d, o["memory_heads"], depth, o["expansion"], o["chunk"], lr_max)
        self.attn = ContextAttention(d, layers.H, o["rope_theta"], o["persistent"])
        self.memory_input_norm = Gain(d)
        self.memory_norm = Gain(d)

    def forward(self, x):
        state = self.memory.initial(x.shape[0])
        out = []
        for lo in range(0, x.shape[1], self.segment):
            xs = x[:, lo:lo + self.segment]
            h = self.memory.read(xs, state[0])
            y = self.attn(xs, h, lo)
            u = rms_norm(y, self.memory_input_norm.weight, self.eps)
            z, state = self.memory(u, state)
            out.append(y * torch.sigmoid(rms_norm(z, self.memory_norm.weight, self.eps)))
        return torch.cat(out, dim=1)


def main():
    # MAL with a one-matrix memory, MAG with a two-layer MLP memory: both depths are checked.
    for kind, seed, gate, depth in [("titans_mal", 105, False, 1), ("titans_mag", 106, True, 2)]:
        attrs = dict(OPTIONS, depth=depth)
        layers.LAYERS[kind] = (seed, lambda g=gate, dp=depth: Titans(g, dp), attrs)
        layers.generate(kind)
    # MAC: a 2-layer memory, segments of 8 tokens (two memory chunks), the second one partial; the
    # default inner step 1 / D (MAL's and MAG's 0.5 put f32 within 6% of its 1e-5 bound here).
    lr_max = OPTIONS["memory_heads"] / layers.D
    attrs = dict(OPTIONS, depth=2, segment=8, lr_max=lr_max)
    layers.LAYERS["titans_mac"] = (107, lambda: TitansMAC(2, 8, lr_max), attrs)
    layers.generate("titans_mac")


if __name__ == "__main__":
    main()
