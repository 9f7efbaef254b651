"""Checks a `hyla export` against the logits hyla computed itself.

`hyla export CKPT DIR --logits T` writes DIR/model.safetensors, DIR/config.json and
DIR/hyla-logits.safetensors (input_ids [2, T] and hyla's f32 logits on them). This script runs
the exported model on the same input_ids and compares, on the whole sequences and on their first
64 tokens (fla's GLA and linear layers run their recurrent kernel up to 64 tokens and the chunked
one past that):

  python3 scripts/export-parity.py DIR...              flash-linear-attention's Hugging Face
                                                       classes (`import fla`, AutoModelForCausalLM),
                                                       in f32 on the GPU, TF32 off
  python3 scripts/export-parity.py --reference DIR...  a plain PyTorch forward written from fla's
                                                       model code (no fla, no transformers), on the
                                                       CPU: the mapping of docs/export.md checked
                                                       where fla does not run

The error printed is max |logits - hyla's| / max |hyla's| over every logit (and the same with
root-mean-squares); a DIR fails when the first is above --tolerance (default 1e-4). Both modes
first check model.safetensors's layout with their own reader (8-byte header length, JSON header,
offsets that tile the data in order, 8-byte aligned) and, where the `safetensors` package is
installed, that it reads the same tensors.

fla's softmax-attention layer calls flash-attn's flash_attn_func, which has no f32 kernel (and
flash-attn is rarely installed beside fla): where it is missing, fla's layer is given an exact
f32 stand-in (causal, sliding window as flash-attn's (w - 1, 0)) and the output says so.
Exit status: 0 when every DIR passes, 1 otherwise."""
import argparse
import json
import math
import os
import struct
import sys

PREFIX = 64  # fla's GLA / linear layers switch from the recurrent to the chunked kernel past this


# ---- safetensors, read with a reader of our own ----

DTYPES = {"F32": ("float32", 4), "I64": ("int64", 8)}


def read_safetensors(path):
    """{name: tensor} from path, checking the layout hyla writes."""
    import torch
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    if (8 + n) % 8:
        raise ValueError(f"{path}: header of {n} bytes leaves the data unaligned")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    if header.pop("__metadata__", {}).get("format") != "pt":
        raise ValueError(f"{path}: no __metadata__ format 'pt' (transformers asks for it)")
    data, tensors, end = blob[8 + n:], {}, 0
    for name in sorted(header, key=lambda k: header[k]["data_offsets"][0]):
        entry = header[name]
        dtype, size = DTYPES[entry["dtype"]]
        begin, stop = entry["data_offsets"]
        count = math.prod(entry["shape"])
        if begin != end or stop - begin != count * size:
            raise ValueError(f"{path}: {name}'s offsets {begin, stop} do not follow {end}")
        end = stop
        raw = bytearray(data[begin:stop])
        t = torch.frombuffer(raw, dtype=getattr(torch, dtype)) if count else torch.zeros(0)
        tensors[name] = t.reshape(entry["shape"])
    if end != len(data):
        raise ValueError(f"{path}: {len(data) - end} bytes past the last tensor")
    if list(header) != sorted(header):
        raise ValueError(f"{path}: tensors not in the order of their names")
    return tensors


def cross_check(path, tensors):
    """The `safetensors` package, where installed, reads the same names, shapes and values."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        return "safetensors package not installed: own reader only"
    theirs = load_file(path)
    if sorted(theirs) != sorted(tensors):
        raise ValueError(f"{path}: the safetensors package reads other names")
    for name, t in tensors.items():
        if theirs[name].shape != t.shape or not bool((theirs[name] == t).all()):
            raise ValueError(f"{path}: the safetensors package reads {name} otherwise")
    return "the safetensors package reads the same tensors"


# ---- a plain PyTorch forward of fla's GLA, LinearAttention and Transformer models ----

def rms_norm(x, weight, eps):
    return x * (x.pow(2).mean(-1, keepdim=True) + eps).rsqrt() * weight


def linear(x, w, b=None):
    y = x @ w.t()
    return y if b is None else y + b


def heads(x, n):
    return x.reshape(*x.shape[:-1], n, x.shape[-1] // n)


def linear_recurrence(q, k, v, log_decay=None):
    """o_t = q_t S_t, S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t, per head; q, k [B, T, H, K]."""
    import torch
    B, T, H, K = q.shape
    S = q.new_zeros(B, H, K, v.shape[-1])
    out = []
    for t in range(T):
        if log_decay is not None:
            S = S * log_decay[:, t].exp().unsqueeze(-1)
        S = S + k[:, t].unsqueeze(-1) * v[:, t].unsqueeze(-2)
        out.append((q[:, t].unsqueeze(-2) @ S).squeeze(-2))
    return torch.stack(out, 1)


def gla_layer(p, x, cfg):
    """fla/layers/gla.py's GatedLinearAttention as GLAForCausalLM builds it (fused norm and
    swish gate, gate_logit_normalizer 16, no short convolution, no feature map)."""
    import torch.nn.functional as F
    H = cfg["num_heads"]
    q, k, v = (heads(linear(x, p[n + ".weight"]), H) for n in ("q_proj", "k_proj", "v_proj"))
    gk = linear(linear(x, p["gk_proj.0.weight"]), p["gk_proj.1.weight"], p["gk_proj.1.bias"])
    gk = F.logsigmoid(heads(gk, H)) / 16
    o = linear_recurrence(q * q.shape[-1] ** -0.5, k, v, gk)
    g = heads(linear(x, p["g_proj.weight"]), H)
    o = rms_norm(o, p["g_norm_swish_gate.weight"], cfg["norm_eps"]) * F.silu(g)
    return linear(o.flatten(-2), p["o_proj.weight"])


def linear_attn_layer(p, x, cfg):
    """fla/layers/linear_attn.py's LinearAttention: feature map on q and k, scale K^-1/2, no
    normalizer, per-head RMSNorm."""
    import torch.nn.functional as F
    H = cfg["num_heads"]
    phi = {"elu": lambda t: F.elu(t) + 1, "relu": F.relu, "identity": lambda t: t}[cfg["feature_map"]]
    q, k, v = (heads(linear(x, p[n + ".weight"]), H) for n in ("q_proj", "k_proj", "v_proj"))
    q, k = phi(q), phi(k)
    o = linear_recurrence(q * q.shape[-1] ** -0.5, k, v)
    return linear(rms_norm(o, p["norm.weight"], cfg["norm_eps"]).flatten(-2), p["o_proj.weight"])


def rotate_half_rope(x, theta):
    """fla's RotaryEmbedding (interleaved False): channel i pairs with i + D/2, angle
    t * theta^(-2i/D), computed in f32."""
    import torch
    T, D = x.shape[1], x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float32) / D))
    angle = torch.outer(torch.arange(T, dtype=torch.float32), inv_freq)
    cos, sin = angle.cos()[:, None, :], angle.sin()[:, None, :]
    x1, x2 = x[..., :D // 2], x[..., D // 2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


def attention(q, k, v, window):
    """Causal softmax attention, q, k, v [B, T, H, D], scale D^-1/2; with a window w each query
    sees its last w keys (flash-attn's window_size (w - 1, 0))."""
    import torch
    T = q.shape[1]
    s = torch.einsum("bthd,bshd->bhts", q, k) * q.shape[-1] ** -0.5
    pos = torch.arange(T, device=q.device)
    i, j = pos[:, None], pos[None, :]
    hidden = (j > i) | ((i - j >= window) if window else False)
    p = s.masked_fill(hidden, float("-inf")).softmax(-1)
    return torch.einsum("bhts,bshd->bthd", p, v)


def attn_layer(p, x, spec):
    """fla/layers/attn.py's Attention: no bias, no qk norm, RoPE on q and k."""
    H = spec["num_heads"]
    q, k, v = (heads(linear(x, p[n + ".weight"]), H) for n in ("q_proj", "k_proj", "v_proj"))
    theta = spec.get("rope_theta", 10000.0)
    q, k = rotate_half_rope(q, theta), rotate_half_rope(k, theta)
    o = attention(q, k, v, spec.get("window_size") or 0)
    return linear(o.flatten(-2), p["o_proj.weight"])


def attn_spec(cfg, layer):
    """The softmax-attention settings of `layer`, or None for the model's own mixer."""
    if cfg["model_type"] == "transformer":
        return cfg
    spec = cfg.get("attn")
    return spec if spec and layer in spec["layers"] else None


def reference_logits(weights, cfg, ids):
    import torch.nn.functional as F
    own = {"gla": gla_layer, "linear_attn": linear_attn_layer}.get(cfg["model_type"])
    eps = cfg["norm_eps"]
    x = weights["model.embeddings.weight"][ids]
    for layer in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{layer}."
        p = {n[len(pre + "attn."):]: t for n, t in weights.items() if n.startswith(pre + "attn.")}
        h = rms_norm(x, weights[pre + "attn_norm.weight"], eps)
        spec = attn_spec(cfg, layer)
        x = x + (attn_layer(p, h, spec) if spec else own(p, h, cfg))
        h = rms_norm(x, weights[pre + "mlp_norm.weight"], eps)
        gate, up = (linear(h, weights[pre + f"mlp.{n}.weight"]) for n in ("gate_proj", "up_proj"))
        x = x + linear(F.silu(gate) * up, weights[pre + "mlp.down_proj.weight"])
    head = weights["model.embeddings.weight" if cfg["tie_word_embeddings"] else "lm_head.weight"]
    return linear(rms_norm(x, weights["model.norm.weight"], eps), head)


# ---- fla's classes ----

def exact_flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False,
                          window_size=(-1, -1), **unused):
    """flash_attn_func's contract for what fla's Attention asks (causal, no dropout), exact."""
    assert causal and dropout_p == 0.0 and softmax_scale is None, "unexpected flash_attn_func call"
    left = window_size[0]
    return attention(q, k, v, left + 1 if left >= 0 else 0).to(q.dtype)


def load_fla(directory):
    """The exported model through AutoModelForCausalLM, f32 on the GPU; and a note on flash-attn."""
    os.environ.setdefault("TRITON_F32_DEFAULT", "ieee")  # Triton's dots in f32, not TF32
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    import fla  # registers fla's configs and models with transformers
    import fla.layers.attn as fla_attn
    from transformers import AutoModelForCausalLM
    if fla_attn.flash_attn_func is None:  # patched once, for every model after too
        fla_attn.flash_attn_func = exact_flash_attn_func
    note = ("flash-attn missing: fla's Attention ran with an exact f32 stand-in for flash_attn_func"
            if fla_attn.flash_attn_func is exact_flash_attn_func else "flash-attn's flash_attn_func")
    model, info = AutoModelForCausalLM.from_pretrained(
        directory, dtype=torch.float32, output_loading_info=True)
    tied = model.config.tie_word_embeddings
    problems = {k: [n for n in v if not (tied and n == "lm_head.weight")]
                for k, v in info.items() if v}
    problems = {k: v for k, v in problems.items() if v}
    if problems:
        raise ValueError(f"{directory}: transformers loaded the weights with {problems}")
    print(f"  {type(model).__name__} from fla {getattr(fla, '__version__', '?')}, {note}")
    model = model.cuda().eval()

    def run(ids):
        with torch.no_grad():
            return model(input_ids=ids.cuda(), use_cache=False).logits.float().cpu()
    return run


# ---- the comparison ----

def errors(got, want):
    diff = (got.double() - want.double())
    scale = want.double()
    return ((diff.abs().max() / scale.abs().max()).item(),
            (diff.pow(2).mean().sqrt() / scale.pow(2).mean().sqrt()).item())


def check(directory, reference, tolerance):
    import torch
    with open(os.path.join(directory, "config.json")) as f:
        cfg = json.load(f)
    path = os.path.join(directory, "model.safetensors")
    weights = read_safetensors(path)
    print(f"{directory}: {cfg['architectures'][0]}, {len(weights)} tensors; {cross_check(path, weights)}")
    saved = read_safetensors(os.path.join(directory, "hyla-logits.safetensors"))
    ids, want = saved["input_ids"], saved["logits"]
    if reference:
        run = lambda tokens: reference_logits(weights, cfg, tokens)  # noqa: E731
        print("  a plain PyTorch forward of fla's model code, f32 on the CPU")
    else:
        run = load_fla(directory)
    ok = True
    for length in sorted({ids.shape[1], min(PREFIX, ids.shape[1])}):
        with torch.no_grad():
            got = run(ids[:, :length])
        worst, rms = errors(got, want[:, :length])
        passed = worst < tolerance
        ok &= passed
        print(f"  {ids.shape[0]} x {length} tokens: max relative error {worst:.2e}, "
              f"rms relative error {rms:.2e}  {'ok' if passed else 'FAIL'} (tolerance {tolerance:g})")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", metavar="DIR")
    parser.add_argument("--reference", action="store_true",
                        help="a plain PyTorch forward on the CPU instead of fla's classes")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    ok = True
    for directory in args.dirs:
        try:
            ok &= check(directory, args.reference, args.tolerance)
        except (OSError, ValueError, KeyError) as e:
            print(f"FAIL: {directory}: {e}")
            ok = False
    print("export parity: " + ("every model within tolerance" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
