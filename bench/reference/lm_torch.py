"""PyTorch references for bench/bench_cuda_lm.c's 134M language models (d = 768, 12 blocks, 12
heads, vocab 32000, RMSNorm, SwiGLU of 2048, untied head): tokens/s and GPU memory of whole
training steps (forward, loss, backward, clipping, fused AdamW), the median of 5 steps after 2
warm-ups, at B = 8, T = 2048 and B = 2, T = 8192 (16384 tokens a step).

Models, as hyla's bench builds them (layers/model.c):
  softmax  12 blocks of causal softmax attention (RoPE, SDPA; one fused qkv projection, the
           FLOPs and parameters of hyla's separate q, k, v);
  hybrid   3:1 GLA/attention (gla, gla, gla, attn, repeated);
  gla      12 GLA blocks.
A GLA layer is layers/gla.c's with hy_model_config_default()'s settings: 12 heads, key width
d / 2, value width d, q = x W_q / sqrt(d_k), k = x W_k, v = x W_v, a low-rank (16) forget gate
logsigmoid(x W_a1 W_a2 + b) / 16, o = GLA(q, k, v, gate) by flash-linear-attention's chunk_gla
(fla, from .gpu-deps/python), y = (RMSNorm_per_head(o) * silu(x W_g)) W_o.
Modes: eager  PyTorch eager with bf16 autocast (the issue's reference);
       compile  torch.compile (model and loss) with bf16 autocast; fla marks chunk_gla
                torch.compiler.disable, so its Triton kernels run between compiled graphs;
       f32  eager f32, TF32 off, as hyla's f32 (off unless asked: slow, and no target).
A model or mode that fails (compile, out of memory, fla missing) prints a row of n/a and why.
Memory: peak is torch.cuda.max_memory_allocated, held max_memory_reserved, both over the timed
steps (reset after the warm-ups, so each row's peak is its own).
Usage: python3 bench/reference/lm_torch.py [T ...] [--models softmax,hybrid,gla]
                                           [--modes eager,compile,f32]
  (defaults: 2048 8192, every model, eager and compile)"""
import argparse
import gc
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from timing import median_ms

D, LAYERS, HEADS, VOCAB, TOKENS = 768, 12, 12, 32000, 8 * 2048
WARMUPS, REPS = 2, 5
# layers/model.c's hy_model_config_default().gla: heads from the model, expand_k, expand_v,
# gate rank, gate_norm, (chunk 64: fla's own), norm_eps
EXPAND_K, EXPAND_V, GATE_RANK, GATE_NORM, GLA_NORM_EPS = 0.5, 1.0, 16, 16.0, 1e-5
NORM_EPS = 1e-6
PATTERNS = {"softmax": ["attn"], "hybrid": ["gla", "gla", "gla", "attn"], "gla": ["gla"]}
NAMES = {"softmax": "softmax", "hybrid": "3:1 gla/attn", "gla": "pure gla"}  # as hyla's rows
MODES = ("eager", "compile", "f32")


class OwnRMSNorm(nn.Module):  # for a PyTorch older than nn.RMSNorm (2.4)
    def __init__(self, d, eps):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


RMSNorm = getattr(nn, "RMSNorm", OwnRMSNorm)


def naive_sdpa(q, k, v, is_causal=True):  # only for --cpu-smoke on a PyTorch older than 2.0
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    T = q.shape[-2]
    s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return s.softmax(-1) @ v


sdpa = getattr(F, "scaled_dot_product_attention", naive_sdpa)


def swiglu_hidden(d):  # hy_swiglu_default_hidden: 8/3 d rounded up, then to a multiple of 64
    return ((8 * d + 2) // 3 + 63) // 64 * 64


class Config:
    def __init__(self, d=D, layers=LAYERS, heads=HEADS, vocab=VOCAB):
        self.d, self.layers, self.heads, self.vocab = d, layers, heads, vocab
        self.hidden = swiglu_hidden(d)
        self.key, self.value = int(EXPAND_K * d), int(EXPAND_V * d)


def kinds(pattern, layers):
    return [pattern[i % len(pattern)] for i in range(layers)]


def hyla_params(c, pattern):
    """hyla's parameter count (layers/model.c, attention.c, gla.c, swiglu.c), by hand."""
    d, key, value, dv = c.d, c.key, c.value, c.value // c.heads
    attn = 4 * d * d  # q, k, v, o: d x d, no biases
    gla = (d * key + d * key + d * value  # q_proj, k_proj, v_proj
           + d * GATE_RANK + GATE_RANK * key + key  # gk_proj/0, gk_proj/1 with its bias
           + d * value + value * d + dv)  # g_proj, o_proj, g_norm (per head, shared)
    mixer = {"attn": attn, "gla": gla}
    block = {k: 2 * d + 3 * d * c.hidden + m for k, m in mixer.items()}  # 2 RMSNorms, SwiGLU
    return (c.vocab * d + sum(block[k] for k in kinds(pattern, c.layers)) + d  # embed, final norm
            + d * c.vocab)  # untied head


def rope(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads = c.heads
        self.qkv, self.o = nn.Linear(c.d, 3 * c.d, bias=False), nn.Linear(c.d, c.d, bias=False)

    def forward(self, x, cos, sin):
        B, T, d = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, d // self.heads).unbind(2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        a = sdpa(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        return self.o(a.transpose(1, 2).reshape(B, T, d))


class GLA(nn.Module):
    """layers/gla.c's layer; gla(q, k, v, g, scale) is chunk_gla (or the smoke check's loop)."""

    def __init__(self, c, gla):
        super().__init__()
        self.gla, self.heads = gla, c.heads
        self.dk, self.dv = c.key // c.heads, c.value // c.heads
        self.q_proj = nn.Linear(c.d, c.key, bias=False)
        self.k_proj = nn.Linear(c.d, c.key, bias=False)
        self.v_proj = nn.Linear(c.d, c.value, bias=False)
        self.gk_down = nn.Linear(c.d, GATE_RANK, bias=False)
        self.gk_up = nn.Linear(GATE_RANK, c.key, bias=True)
        self.g_proj = nn.Linear(c.d, c.value, bias=False)
        self.o_proj = nn.Linear(c.value, c.d, bias=False)
        self.g_norm = RMSNorm(self.dv, eps=GLA_NORM_EPS)

    def forward(self, x, cos=None, sin=None):
        B, T, _ = x.shape
        H = self.heads
        q = self.q_proj(x).view(B, T, H, self.dk)  # scaled by dk^-0.5 inside gla(): scale
        k = self.k_proj(x).view(B, T, H, self.dk)
        v = self.v_proj(x).view(B, T, H, self.dv)
        g = (F.logsigmoid(self.gk_up(self.gk_down(x))) / GATE_NORM).view(B, T, H, self.dk)
        o = self.gla(q, k, v, g, self.dk ** -0.5)
        w = self.g_norm.weight
        if o.dtype != w.dtype:  # bf16 under autocast: the norm in bf16 (PyTorch's fused kernel
            # takes no f32 weight with a bf16 input), as fla's own GLA layer computes it
            o = F.rms_norm(o, (self.dv,), w.to(o.dtype), GLA_NORM_EPS)
        else:
            o = self.g_norm(o)
        o = o * F.silu(self.g_proj(x)).view(B, T, H, self.dv)
        return self.o_proj(o.reshape(B, T, H * self.dv))


class Block(nn.Module):
    def __init__(self, c, kind, gla):
        super().__init__()
        self.n1, self.n2 = RMSNorm(c.d, eps=NORM_EPS), RMSNorm(c.d, eps=NORM_EPS)
        self.mixer = Attention(c) if kind == "attn" else GLA(c, gla)
        # SwiGLU: gate and up in one matmul (the FLOPs of hyla's two)
        self.up = nn.Linear(c.d, 2 * c.hidden, bias=False)
        self.down = nn.Linear(c.hidden, c.d, bias=False)

    def forward(self, x, cos, sin):
        x = x + self.mixer(self.n1(x), cos, sin)
        g, u = self.up(self.n2(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(g) * u)


class LM(nn.Module):
    def __init__(self, c, pattern, gla=None):
        super().__init__()
        self.c = c
        self.embed = nn.Embedding(c.vocab, c.d)
        self.blocks = nn.ModuleList(Block(c, k, gla) for k in kinds(pattern, c.layers))
        self.norm = RMSNorm(c.d, eps=NORM_EPS)
        self.head = nn.Linear(c.d, c.vocab, bias=False)

    def forward(self, tokens):
        T, half = tokens.shape[1], self.c.d // self.c.heads // 2
        freq = 1e4 ** (-torch.arange(half, device=tokens.device) / half)
        angle = torch.arange(T, device=tokens.device)[:, None] * freq[None]
        cos, sin = angle.cos()[None, :, None], angle.sin()[None, :, None]
        x = self.embed(tokens)
        for b in self.blocks:
            x = b(x, cos, sin)
        return self.head(self.norm(x))


def gla_recurrent(q, k, v, g, scale):
    """GLA token by token in plain PyTorch (--cpu-smoke only): S_t = diag(exp g_t) S_{t-1} +
    k_t^T v_t, o_t = scale q_t S_t, per head; q, k, g [B, T, H, dk], v [B, T, H, dv]."""
    B, T, H, K = q.shape
    S = q.new_zeros(B, H, K, v.shape[-1])
    out = []
    for t in range(T):
        S = S * g[:, t, :, :, None].exp() + k[:, t, :, :, None] * v[:, t, :, None, :]
        out.append((q[:, t, :, :, None] * scale * S).sum(-2))
    return torch.stack(out, 1)


def gla_quadratic(q, k, v, g, scale):  # the same, all pairs at once: checks gla_recurrent
    b = g.cumsum(1)  # [B, T, H, dk]
    T = q.shape[1]
    decay = (b[:, :, None] - b[:, None, :]).masked_fill(
        ~torch.ones(T, T, dtype=torch.bool).tril()[None, :, :, None, None], float("-inf")).exp()
    A = torch.einsum("bthk,bshk,btshk->bhts", q * scale, k, decay)
    return torch.einsum("bhts,bshv->bthv", A, v)


NA = [f"{'n/a':>9}", f"{'n/a':>8}", f"{'n/a':>8}", f"{'n/a':>8}"]  # a failed row's cells


def row(name, T, B, cells):
    return f"| {name:34} | {T:5} | {B:2} | " + " | ".join(cells) + " |"


def measure(model_key, mode, T, gla):
    """One model in one mode at one length on the GPU: (parameters, s per step, peak, held)."""
    B = TOKENS // T
    with torch.device("cuda"):  # initialized there: faster than on the CPU
        model = LM(Config(), PATTERNS[model_key], gla)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1,
                            fused=True)
    tokens = torch.randint(0, VOCAB, (B, T), device="cuda")
    targets = torch.randint(0, VOCAB, (B, T), device="cuda")

    def loss_of(tokens, targets):
        return F.cross_entropy(model(tokens).float().view(-1, VOCAB), targets.view(-1))

    loss_fn = torch.compile(loss_of, dynamic=False) if mode == "compile" else loss_of

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode != "f32"):
            loss = loss_fn(tokens, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(WARMUPS):  # compiling and fla's autotuning happen here, outside the peak
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t = median_ms(step, warmups=0, reps=REPS) / 1e3
    peak = torch.cuda.max_memory_allocated() / 2**30
    held = torch.cuda.max_memory_reserved() / 2**30
    return sum(p.numel() for p in model.parameters()), t, peak, held


def free_gpu():
    gc.collect()
    if hasattr(torch, "_dynamo"):
        torch._dynamo.reset()
    torch.cuda.empty_cache()


def label(model_key, mode, params):
    who = "torch" if model_key == "softmax" else "torch+fla"
    prec = "f32" if mode == "f32" else "bf16 autocast"
    return f"{who} {NAMES[model_key]} {'compile ' if mode == 'compile' else ''}{prec} " \
           f"{params / 1e6:.0f}M"


def run(model_key, mode, T, gla, missing):
    """Prints one row: the measurement, or n/a and why."""
    B = TOKENS // T
    why = missing if PATTERNS[model_key] != ["attn"] else None
    if not why:
        try:
            params, t, peak, held = measure(model_key, mode, T, gla)
            print(row(label(model_key, mode, params), T, B,
                      [f"{t * 1e3:9.1f}", f"{B * T / t:8.0f}", f"{peak:8.1f}", f"{held:8.1f}"]),
                  flush=True)
        except Exception as e:  # compiling failed, out of memory, a kernel that did not build
            text = " ".join(str(e).split())
            why = f"{type(e).__name__}{': ' + text if text else ''}"
            if len(why) > 160:
                why = why[:157] + "..."
    free_gpu()  # after the except clause: the traceback, holding the model, is gone
    if why:
        params = hyla_params(Config(), PATTERNS[model_key])
        print(row(label(model_key, mode, params), T, B, NA + [why.replace("|", "/")]), flush=True)


def cpu_smoke():
    """Each model at a tiny size on the CPU with gla_recurrent for chunk_gla: one training step,
    every parameter given a finite gradient, the parameter count formula against the module's,
    at the tiny size and the full one (the counts the GPU rows print)."""
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 7, 3, 4), torch.randn(2, 7, 3, 4), torch.randn(2, 7, 3, 5)
    g = F.logsigmoid(torch.randn(2, 7, 3, 4))
    err = (gla_recurrent(q, k, v, g, 0.5) - gla_quadratic(q, k, v, g, 0.5)).abs().max().item()
    assert err < 1e-4, f"gla_recurrent against gla_quadratic: {err}"
    print(f"smoke: gla_recurrent matches the all-pairs form ({err:.1e})")
    tiny = Config(d=64, layers=4, heads=4, vocab=101)
    for key, pattern in PATTERNS.items():
        model = LM(tiny, pattern, gla_recurrent)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
        tokens, targets = torch.randint(0, tiny.vocab, (2, 9)), torch.randint(0, tiny.vocab, (2, 9))
        loss = F.cross_entropy(model(tokens).float().view(-1, tiny.vocab), targets.view(-1))
        loss.backward()
        for n, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), f"{key}: {n}'s gradient"
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if hasattr(F, "rms_norm"):  # PyTorch 2.4 on: a step in bf16 autocast too, as on the GPU
            with torch.autocast("cpu", dtype=torch.bfloat16):
                half = F.cross_entropy(model(tokens).float().view(-1, tiny.vocab), targets.view(-1))
            half.backward()
            assert math.isfinite(half.item()), f"{key}: bf16 autocast loss {half.item()}"
        got, want = sum(p.numel() for p in model.parameters()), hyla_params(tiny, pattern)
        assert got == want, f"{key} tiny: {got} parameters, hyla's formula {want}"
        assert math.isfinite(loss.item())
        full = LM(Config(), pattern, gla_recurrent)
        got_full = sum(p.numel() for p in full.parameters())
        want_full = hyla_params(Config(), pattern)
        assert got_full == want_full, f"{key}: {got_full} parameters, hyla's formula {want_full}"
        del full
        kinds_tiny = "".join("g" if k == "gla" else "a" for k in kinds(pattern, tiny.layers))
        print(f"smoke: {key} ({kinds_tiny}) loss {loss.item():.3f}, {got} parameters at d = 64; "
              f"{got_full} = hyla's {want_full} at full size: "
              f"row '{label(key, 'eager', got_full)}'")
    print(row(label("softmax", "compile", hyla_params(Config(), ["attn"])), 2048, 8,
              NA + ["(how a failure prints)"]))
    print("smoke: passed")


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("lengths", nargs="*", type=int, metavar="T")
    p.add_argument("--models", default="softmax,hybrid,gla")
    p.add_argument("--modes", default="eager,compile")
    p.add_argument("--cpu-smoke", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.cpu_smoke:
        return cpu_smoke()
    models, modes = a.models.split(","), a.modes.split(",")
    for m in models:
        if m not in PATTERNS:
            p.error(f"unknown model '{m}' (softmax, hybrid, gla)")
    for m in modes:
        if m not in MODES:
            p.error(f"unknown mode '{m}' (eager, compile, f32)")
    if any(T < 1 or TOKENS % T for T in a.lengths):
        p.error(f"lengths must divide the {TOKENS} tokens of a step")
    gla, missing, fla = None, None, "no fla"
    if any(PATTERNS[m] != ["attn"] for m in models):
        try:
            from fla.ops.gla import chunk_gla

            def gla(q, k, v, g, scale):
                return chunk_gla(q, k, v, g, scale=scale)[0]

            try:
                from importlib.metadata import version
                fla = f"fla-core {version('fla-core')}"
            except Exception:
                fla = "fla"
        except Exception as e:  # fla missing, or too new for this PyTorch
            text = " ".join(str(e).split())
            missing = f"no flash-linear-attention: {type(e).__name__}: {text}"[:160]
    if "compile" in modes and hasattr(torch, "_dynamo"):
        # every block of a GLA model is its own graph (fla's op breaks them): room for them all
        for knob in ("cache_size_limit", "recompile_limit", "accumulated_cache_size_limit",
                     "accumulated_recompile_limit"):
            if hasattr(torch._dynamo.config, knob):
                setattr(torch._dynamo.config, knob, max(256, getattr(torch._dynamo.config, knob)))
    triton = sys.modules.get("triton")
    print(f"PyTorch {torch.__version__} LM training steps ({', '.join(modes)}; GLA by {fla}"
          f"{', Triton ' + triton.__version__ if triton else ''}), {TOKENS} tokens per step, "
          f"median of {REPS} after {WARMUPS} warm-ups", flush=True)
    if missing:
        print(f"({missing}: the hybrid and GLA rows are n/a)", flush=True)
    elif gla and "compile" in modes:
        from fla.ops.gla import chunk_gla
        how = ("fla marks chunk_gla torch.compiler.disable: its kernels run eagerly between the "
               "compiled graphs" if getattr(chunk_gla, "_torchdynamo_disable", False) else
               "torch.compile traces into fla's chunk_gla")
        print(f"(compile with fla: {how})", flush=True)
    for T in a.lengths or [2048, 8192]:
        for m in models:
            for mode in modes:
                run(m, mode, T, gla, missing)


if __name__ == "__main__":
    main()
