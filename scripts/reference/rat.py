"""Golden fixture for hyla's RAT layer (kind "rat"), from an independent PyTorch implementation.

RAT (Wei et al. 2025, "RAT: Bridging RNN Efficiency and Attention Accuracy"; the paper's plain
form is rat_slow.py) written from its math in float64, in the plainest form: the gated recurrence
as a Python loop over t, the chunk-level RoPE as cos/sin of chunk index * frequency, and the
attention as one explicit softmax per query over the list of keys it may see. For x [B, T, d]:

    z = sigmoid(x Wz^T), u = x Wu^T, f = sigmoid(x Wg^T + b_f)          d channels, H heads
    q = x Wq^T, k = x Wk^T                   G groups of dh channels; head h uses group h mod G
    inside each chunk of L tokens, from 0 at its first token, per channel:
        xs_t = f_t xs_{t-1} + (1 - f_t) u_t,   ks_t = f_t ks_{t-1} + (1 - f_t) k_t
    R(c): rotate-half RoPE at position c = t // L (the chunk index), base rope_theta
    query t, in chunk c(t), sees the final states of the earlier chunks, (R(c) ks_e, xs_e) with
    e = (c + 1) L - 1 for c < c(t), and its own running state (R(c(t)) ks_t, xs_t):
        o_t = softmax_j(dh^-1/2 (R(c(t)) q_t) . key_j) . values
    y = (z * o) Wo^T

T = 13 with L = 4: three whole chunks and a partial one. Written to tests/fixtures/rat.h5 in the
format of scripts/reference/layers.py (whose helpers this imports); tests/layers/test_fixtures.c
checks hyla's fused and plain forms against it.

usage: /usr/bin/python3 scripts/reference/rat.py   (Debian's python3-torch and python3-h5py)
"""
import math
import os

import torch
import torch.nn as nn

from layers import OUT_DIR, heads, hyla_name, write_h5  # sets float64 as the default dtype

SEED = 105
B, T = 2, 13
D, H, GROUPS, CHUNK, THETA = 16, 4, 2, 4, 500.0


def rope(z, pos, theta):
    """Rotate-half RoPE of z [..., dh] at the integer position pos."""
    dh = z.shape[-1]
    half = dh // 2
    angle = pos * theta ** (-2.0 * torch.arange(half, dtype=torch.float64) / dh)
    cos, sin = torch.cos(angle), torch.sin(angle)
    lo, hi = z[..., :half], z[..., half:]
    return torch.cat([lo * cos - hi * sin, hi * cos + lo * sin], dim=-1)


class RAT(nn.Module):
    def __init__(self, d, n_heads, n_groups, chunk, theta):
        super().__init__()
        self.h, self.g, self.dh, self.chunk, self.theta = n_heads, n_groups, d // n_heads, chunk, theta
        self.z_proj = nn.Linear(d, d, bias=False)
        self.u_proj = nn.Linear(d, d, bias=False)
        self.g_proj = nn.Linear(d, d, bias=True)  # the bias is the forget gate's b_f
        self.q_proj = nn.Linear(d, n_groups * self.dh, bias=False)
        self.k_proj = nn.Linear(d, n_groups * self.dh, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)

    def to_heads(self, z):
        """[B, T, G dh] -> [B, T, H, dh], head h taking group h mod G."""
        groups = heads(z, self.g)
        return torch.stack([groups[:, :, h % self.g] for h in range(self.h)], dim=2)

    def forward(self, x):
        b, t_len, d = x.shape
        L = self.chunk
        z = torch.sigmoid(self.z_proj(x))
        u = heads(self.u_proj(x), self.h)
        f = heads(torch.sigmoid(self.g_proj(x)), self.h)
        q = self.to_heads(self.q_proj(x))
        k = self.to_heads(self.k_proj(x))

        xs, ks = [], []  # running value and key states per position, [B, H, dh] each
        for t in range(t_len):
            new_x, new_k = (1 - f[:, t]) * u[:, t], (1 - f[:, t]) * k[:, t]
            if t % L:
                new_x, new_k = f[:, t] * xs[-1] + new_x, f[:, t] * ks[-1] + new_k
            xs.append(new_x)
            ks.append(new_k)

        out = []
        for t in range(t_len):
            c = t // L
            keys = [rope(ks[(j + 1) * L - 1], j, self.theta) for j in range(c)]
            values = [xs[(j + 1) * L - 1] for j in range(c)]
            keys.append(rope(ks[t], c, self.theta))
            values.append(xs[t])
            qt = rope(q[:, t], c, self.theta)  # [B, H, dh]
            scores = torch.stack([(qt * kj).sum(-1) for kj in keys], dim=-1) / math.sqrt(self.dh)
            p = torch.softmax(scores, dim=-1)  # [B, H, c + 1]
            out.append((p.unsqueeze(-1) * torch.stack(values, dim=2)).sum(2))
        o = torch.stack(out, dim=1).reshape(b, t_len, d)
        return self.o_proj(z * o)


def main():
    layer = RAT(D, H, GROUPS, CHUNK, THETA)
    gen = torch.Generator().manual_seed(SEED)
    params = [(hyla_name(n), p) for n, p in layer.named_parameters()]
    with torch.no_grad():
        for name, p in params:  # drawn in registration order, as layers.py draws them
            scale = 1.0 if name.endswith("bias") else 0.3
            p.copy_(scale * torch.randn(p.shape, generator=gen))
    x = torch.randn(B, T, D, generator=gen).requires_grad_(True)
    gy = torch.randn(B, T, D, generator=gen)
    y = layer(x)
    y.backward(gy)

    path = os.path.normpath(os.path.join(OUT_DIR, "rat.h5"))
    data = {"x": x.detach(), "gy": gy, "y": y.detach(), "grad/x": x.grad}
    for name, p in params:
        data["params/" + name], data["grad/params/" + name] = p.detach(), p.grad
    attrs = {"kind": "rat", "seed": SEED, "batch": B, "seq_len": T, "d_model": D, "heads": H,
             "n_groups": GROUPS, "chunk": CHUNK, "rope_theta": THETA}
    os.makedirs(OUT_DIR, exist_ok=True)
    write_h5(path, attrs, data)
    print(f"{path}: y {tuple(y.shape)}, {len(params)} parameters, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
