"""Golden fixtures for hyla's mixer layers, from an independent PyTorch implementation.

Each layer is written here from its defining math, in float64, in the plainest form: softmax
attention as masked scores -> softmax -> weighted sum, and every linear-attention layer as the
step-by-step recurrence (a Python loop over t carrying the state S). For each layer a fixed seed
draws the parameters, an input x [B, T, d] and an output gradient gy; y = layer(x) is computed and
gy backpropagated. Everything is saved to tests/fixtures/<kind>.h5 (float64):

    /x, /gy, /y, /grad/x                   input, output gradient, output, input gradient
    /params/<name>, /grad/params/<name>    parameters under hyla's names and their gradients
    attributes on /                        kind, seed, batch, seq_len, d_model, heads and the
                                           layer's options

Parameter names are hyla's (module path with '/'); a Linear's weight is [out, in] (y = x W^T).
tests/layers/test_fixtures.c checks hyla against these files.

usage: /usr/bin/python3 scripts/reference/layers.py [KIND...]   (Debian's python3-torch, python3-h5py)
"""
import math
import os
import sys

import h5py
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

B, T, D, H = 2, 13, 12, 3
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures")


def rms_norm(z, weight, eps):
    """RMSNorm over the last dim; weight None for the gainless form."""
    z = z / torch.sqrt(z.pow(2).mean(-1, keepdim=True) + eps)
    return z if weight is None else z * weight


def heads(z, n):
    """[B, T, n * dh] -> [B, T, n, dh]"""
    return z.reshape(z.shape[0], z.shape[1], n, z.shape[2] // n)


def recurrence(q, k, v, log_decay):
    """The plain recurrence of every linear layer here, head by head:
    S_t = diag(exp(log_decay_t)) S_{t-1} + k_t^T v_t (S is dk x dv, S_0 = 0), o_t = q_t S_t.
    q, k, log_decay [B, T, H, dk]; v [B, T, H, dv] -> o [B, T, H, dv]."""
    b, t_len, h, dk = q.shape
    dv = v.shape[-1]
    S = torch.zeros(b, h, dk, dv)
    out = []
    for t in range(t_len):
        kt, vt = k[:, t], v[:, t]  # [B, H, dk], [B, H, dv]
        S = torch.exp(log_decay[:, t]).unsqueeze(-1) * S + kt.unsqueeze(-1) * vt.unsqueeze(-2)
        out.append((q[:, t].unsqueeze(-1) * S).sum(-2))  # sum_i q_i S_ij
    return torch.stack(out, dim=1)


class Attention(nn.Module):
    """Causal multi-head softmax attention with rotate-half RoPE."""

    def __init__(self, d, n_heads, rope_theta):
        super().__init__()
        self.h, self.dh, self.theta = n_heads, d // n_heads, rope_theta
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)

    def rope(self, z):  # [B, T, H, dh]
        half = self.dh // 2
        i = torch.arange(half, dtype=torch.float64)
        t = torch.arange(z.shape[1], dtype=torch.float64)
        angle = t[:, None] * self.theta ** (-2.0 * i / self.dh)[None, :]  # [T, half]
        cos, sin = torch.cos(angle)[None, :, None, :], torch.sin(angle)[None, :, None, :]
        lo, hi = z[..., :half], z[..., half:]
        return torch.cat([lo * cos - hi * sin, hi * cos + lo * sin], dim=-1)

    def forward(self, x):
        b, t_len, _ = x.shape
        q = self.rope(heads(self.q_proj(x), self.h)).transpose(1, 2)  # [B, H, T, dh]
        k = self.rope(heads(self.k_proj(x), self.h)).transpose(1, 2)
        v = heads(self.v_proj(x), self.h).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.dh)  # [B, H, T(t), T(s)]
        future = torch.triu(torch.ones(t_len, t_len, dtype=torch.bool), diagonal=1)
        p = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
        o = (p @ v).transpose(1, 2).reshape(b, t_len, -1)
        return self.o_proj(o)


class GLA(nn.Module):
    """Gated linear attention: a data-dependent forget gate per key channel."""

    def __init__(self, d, n_heads, expand_k, expand_v, gate_rank, gate_norm, norm_eps):
        super().__init__()
        key, value = int(d * expand_k), int(d * expand_v)
        self.h, self.dk, self.dv = n_heads, key // n_heads, value // n_heads
        self.gate_norm, self.eps = gate_norm, norm_eps
        self.q_proj = nn.Linear(d, key, bias=False)
        self.k_proj = nn.Linear(d, key, bias=False)
        self.v_proj = nn.Linear(d, value, bias=False)
        self.gk_proj = nn.Sequential(nn.Linear(d, gate_rank, bias=False),
                                     nn.Linear(gate_rank, key, bias=True))
        self.g_proj = nn.Linear(d, value, bias=False)
        self.o_proj = nn.Linear(value, d, bias=False)
        self.g_norm = nn.Module()
        self.g_norm.weight = nn.Parameter(torch.ones(self.dv))

    def forward(self, x):
        b, t_len, _ = x.shape
        q = heads(self.q_proj(x), self.h) / math.sqrt(self.dk)
        k = heads(self.k_proj(x), self.h)
        v = heads(self.v_proj(x), self.h)
        g = heads(F.logsigmoid(self.gk_proj(x)) / self.gate_norm, self.h)
        o = recurrence(q, k, v, g)  # [B, T, H, dv]
        o = rms_norm(o, self.g_norm.weight, self.eps) * F.silu(heads(self.g_proj(x), self.h))
        return self.o_proj(o.reshape(b, t_len, -1))


class Lightning(nn.Module):
    """Lightning attention: a constant decay per head, log lambda_h = -(8/H)(1 - l/L) h."""

    def __init__(self, d, n_heads, layer, n_layers, norm_eps):
        super().__init__()
        self.h, self.eps = n_heads, norm_eps
        self.log_decay = torch.tensor(
            [-(8.0 / n_heads) * (1.0 - layer / n_layers) * h for h in range(n_heads)])
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.u_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)

    def forward(self, x):
        b, t_len, _ = x.shape
        q = heads(F.silu(self.q_proj(x)), self.h)
        k = heads(F.silu(self.k_proj(x)), self.h)
        v = heads(self.v_proj(x), self.h)
        u = self.u_proj(x)
        log_decay = self.log_decay[None, None, :, None].expand(b, t_len, self.h, q.shape[-1])
        o = recurrence(q, k, v, log_decay).reshape(b, t_len, -1)
        return self.o_proj(u * rms_norm(o, None, self.eps))


class LinearAttention(nn.Module):
    """Plain causal linear attention with the elu + 1 feature map, no decay."""

    def __init__(self, d, n_heads, norm_eps):
        super().__init__()
        self.h, self.dh, self.eps = n_heads, d // n_heads, norm_eps
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)
        self.norm = nn.Module()
        self.norm.weight = nn.Parameter(torch.ones(self.dh))

    def forward(self, x):
        b, t_len, _ = x.shape
        phi = lambda z: F.elu(z) + 1.0
        q = heads(phi(self.q_proj(x)), self.h) / math.sqrt(self.dh)
        k = heads(phi(self.k_proj(x)), self.h)
        v = heads(self.v_proj(x), self.h)
        o = recurrence(q, k, v, torch.zeros_like(q))
        o = rms_norm(o, self.norm.weight, self.eps)
        return self.o_proj(o.reshape(b, t_len, -1))


class Conv(nn.Module):
    """A short causal convolution gating a projection (BaseConv): per channel c,
    z_t = b + sum_{i < K} w_i x_{t-i} (zeros before the start), y = (x W^T) * z.
    Written as the loop over t and i."""

    def __init__(self, d, kernel):
        super().__init__()
        self.proj = nn.Linear(d, d, bias=False)
        self.conv = nn.Module()
        self.conv.weight = nn.Parameter(torch.zeros(kernel, d))  # row i: the token i back
        self.conv.bias = nn.Parameter(torch.zeros(d))

    def forward(self, x):
        out = []
        for t in range(x.shape[1]):
            z = self.conv.bias.expand(x.shape[0], -1)
            for i in range(min(self.conv.weight.shape[0], t + 1)):
                z = z + self.conv.weight[i] * x[:, t - i]
            out.append(z)
        return self.proj(x) * torch.stack(out, dim=1)


# kind -> (seed, constructor, config attributes)
LAYERS = {
    "attn": (101, lambda: Attention(D, H, 10000.0), {"rope_theta": 10000.0}),
    "gla": (102, lambda: GLA(D, H, 0.5, 1.0, 3, 16.0, 1e-5),
            {"expand_k": 0.5, "expand_v": 1.0, "gate_rank": 3, "gate_norm": 16.0,
             "norm_eps": 1e-5}),
    "lightning": (103, lambda: Lightning(D, H, 1, 4, 1e-5),
                  {"layer": 1, "n_layers": 4, "norm_eps": 1e-5}),
    "linear": (104, lambda: LinearAttention(D, H, 1e-5),
               {"feature_map": "elu", "norm_eps": 1e-5}),
    # K = 4 on T = 13: the taps reach before the start at the first three tokens
    "conv": (108, lambda: Conv(D, 4), {"kernel": 4}),
}


def hyla_name(torch_name):
    return torch_name.replace(".", "/")  # "gk_proj.0.weight" -> "gk_proj/0/weight"


def write_h5(path, attrs, data):
    """attrs on the root, data {path: tensor} as float64 datasets. No object timestamps, so a
    regenerated file is byte-identical to the committed one."""
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_LATEST, h5py.h5f.LIBVER_LATEST)
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    with h5py.File(h5py.h5f.create(path.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl)) as f:
        for key, value in attrs.items():
            f.attrs[key] = value
        for key, value in data.items():
            parts = key.split("/")
            for i in range(1, len(parts)):  # parent groups, created without timestamps
                group = "/".join(parts[:i])
                if group not in f:
                    h5py.h5g.create(f.id, group.encode(), gcpl=gcpl)
            f.create_dataset(key, data=value.numpy().astype("<f8"), track_times=False)


def generate(kind):
    seed, make, options = LAYERS[kind]
    layer = make()
    gen = torch.Generator().manual_seed(seed)
    params = [(hyla_name(n), p) for n, p in layer.named_parameters()]
    with torch.no_grad():
        for name, p in params:  # drawn in registration order
            if "norm" in name:
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    x = torch.randn(B, T, D, generator=gen).requires_grad_(True)
    gy = torch.randn(B, T, D, generator=gen)
    y = layer(x)
    y.backward(gy)

    path = os.path.normpath(os.path.join(OUT_DIR, kind + ".h5"))
    data = {"x": x.detach(), "gy": gy, "y": y.detach(), "grad/x": x.grad}
    for name, p in params:
        data["params/" + name], data["grad/params/" + name] = p.detach(), p.grad
    attrs = {"kind": kind, "seed": seed, "batch": B, "seq_len": T, "d_model": D, "heads": H}
    attrs.update(options)
    write_h5(path, attrs, data)
    print(f"{path}: y {tuple(y.shape)}, {len(params)} parameters, {os.path.getsize(path)} bytes")


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    for kind in sys.argv[1:] or LAYERS:  # the kinds named, or all
        generate(kind)


if __name__ == "__main__":
    main()
