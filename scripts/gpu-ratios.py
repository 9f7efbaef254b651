"""hyla against its references, from the tables of one scripts/gpu-check.sh run (bench.log).
Kernels: each kernel's time as hyla / reference (cost), next to the issue's target of 2x, against
PyTorch's SDPA and flash-linear-attention where they ran in the same check, and the issue's H100
bf16 figures (fixed numbers, another GPU) for comparison.
134M LM training steps (bench_cuda_lm against bench/reference/lm_torch.py): for every model and
T, hyla's tokens/s over each reference's (PyTorch eager and torch.compile with bf16 autocast; for
the 3:1 hybrid and pure GLA, the same models with fla's chunk_gla, eager and compiled; eager f32
against hyla's f32 where both ran) and hyla's peak memory over the reference's, against the
issue's targets: tokens/s ratio >= 1.0 and memory ratio <= 1.0. A reference that failed (its row
n/a) shows n/a and why.
Usage: python3 scripts/gpu-ratios.py bench.log"""
import re
import sys

# The issue's H100 bf16 forward + backward figures (ms) and its LM's tokens/s.
ISSUE = {"gla": 2.03, "lightning": 1.72, "sdpa": 0.93, "lm": 240e3}
MODELS = ("softmax", "3:1 gla/attn", "pure gla")  # hyla's order; others follow
LM_ROW = re.compile(r"(hyla|torch\+fla|torch) (.+?)( compile)? "
                    r"(f32|bf16 matmuls|bf16 autocast|bf16) \d+M$")


def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def number(text):
    try:
        return float(text)
    except ValueError:
        return None


def parse(lines):
    """{key: value}: ("attn", precision, pass) ms, ("sdpa", ...) ms, ("gla" | "lightning",
    "hyla" | "fla", pass) ms; ("lm", "hyla", model, precision, T) -> (tokens/s, peak GiB);
    ("lm", "ref", model, precision, T, who, mode) -> (tokens/s, peak GiB, why n/a or None), who
    "torch" or "torch+fla", mode "eager" or "compile", precision "f32" or "bf16" (hyla's "bf16
    matmuls" or "bf16", the references' "bf16 autocast")."""
    got, section = {}, None
    for line in lines:
        if line.startswith("chunked gla"):
            section = "gla"
        elif line.startswith("lightning attention"):
            section = "lightning"
        elif line.startswith("causal softmax attention"):
            section = "attn"
        if not line.startswith("|"):
            continue
        c = cells(line)
        if len(c) < 2 or number(c[1]) is None:
            continue
        name, ms = c[0], number(c[1])
        m = re.match(r"(forward \+ backward|forward), (f32|bf16)", name)
        if m and section == "attn":
            got[("attn", m.group(2), m.group(1))] = ms
            continue
        m = re.match(r"torch sdpa (f32|bf16)\s+(forward \+ backward|forward)$", name)
        if m:
            got[("sdpa", m.group(1), m.group(2))] = ms
            continue
        if name in ("forward", "forward + backward") and section in ("gla", "lightning"):
            got[(section, "hyla", name)] = ms
            continue
        m = re.match(r"fla (chunk_gla|lightning) f32 (forward|fwd \+ bwd)$", name)
        if m:
            kernel = "gla" if m.group(1) == "chunk_gla" else "lightning"
            got[(kernel, "fla", "forward" if m.group(2) == "forward" else "forward + backward")] = ms
            continue
        m = LM_ROW.match(name)
        if m and len(c) >= 6:
            who, model = m.group(1), m.group(2)
            precision = "f32" if m.group(4) == "f32" else "bf16"
            T, tps, peak = int(ms), number(c[4]), number(c[5])
            if who == "hyla":
                if m.group(3) is None:
                    got[("lm", "hyla", model, precision, T)] = (tps, peak)
                continue
            why = None
            if tps is None or peak is None:
                why = c[7] if len(c) > 7 and c[7] else "n/a"
            got[("lm", "ref", model, precision, T, who, "compile" if m.group(3) else "eager")] = \
                (tps, peak, why)
    return got


def kernel_rows(got):
    rows = []

    def add(what, hyla, ref, ref_name, unit):
        if hyla is None or ref is None:
            return
        rows.append((what, f"{hyla:.3f} {unit}", f"{ref:.3f} {unit} ({ref_name})", hyla / ref))

    for prec in ("f32", "bf16"):
        for p in ("forward", "forward + backward"):
            add(f"attention {p}, {prec}", got.get(("attn", prec, p)),
                got.get(("sdpa", prec, p)), f"PyTorch SDPA {prec}", "ms")
    add("attention forward + backward, bf16", got.get(("attn", "bf16", "forward + backward")),
        ISSUE["sdpa"], "issue's SDPA bf16, H100", "ms")
    for kernel in ("gla", "lightning"):
        for p in ("forward", "forward + backward"):
            add(f"{kernel} {p}, f32", got.get((kernel, "hyla", p)), got.get((kernel, "fla", p)),
                "fla f32", "ms")
        add(f"{kernel} forward + backward, f32", got.get((kernel, "hyla", "forward + backward")),
            ISSUE[kernel], "issue's fla bf16, H100", "ms")
    return rows


def verdict(ratio, ok):
    return ("n/a", "n/a") if ratio is None else (f"{ratio:.2f}", "yes" if ok(ratio) else "NO")


def lm_rows(got):
    """(model, T, hyla, reference, tokens/s, ratio, >= 1.0, peak, ratio, <= 1.0) per pair."""
    rows = []
    hyla = sorted((k for k in got if k[:2] == ("lm", "hyla")),
                  key=lambda k: (k[4], MODELS.index(k[2]) if k[2] in MODELS else len(MODELS),
                                 k[2], k[3] == "f32"))
    for key in hyla:
        _, _, model, prec, T = key
        tps, peak = got[key]
        refs = sorted((k for k in got if k[:5] == ("lm", "ref", model, prec, T)),
                      key=lambda k: (k[5], k[6] == "compile"))
        hyla_name = f"hyla {prec}"
        for ref in refs:
            _, _, _, _, _, who, mode = ref
            r_tps, r_peak, why = got[ref]
            what = (f"PyTorch{' + fla chunk_gla' if who == 'torch+fla' else ''} {mode}, "
                    f"{'bf16 autocast' if prec == 'bf16' else 'f32'}")
            if why:
                rows.append((model, T, hyla_name, what, f"n/a ({why})", "n/a", "n/a", "n/a",
                             "n/a", "n/a"))
                continue
            t_ratio = tps / r_tps if tps and r_tps else None
            m_ratio = peak / r_peak if peak is not None and r_peak else None
            rows.append((model, T, hyla_name, what, f"{tps / 1e3:.1f}k / {r_tps / 1e3:.1f}k",
                         *verdict(t_ratio, lambda r: r >= 1.0), f"{peak:.1f} / {r_peak:.1f}",
                         *verdict(m_ratio, lambda r: r <= 1.0)))
        if prec == "bf16" and not refs:
            rows.append((model, T, hyla_name, "(no reference in this log)", "", "n/a", "n/a", "",
                         "n/a", "n/a"))
        if prec == "bf16" and T == 2048 and tps:
            rows.append((model, T, hyla_name, "issue's PyTorch bf16, H100 (240k tokens/s)",
                         f"{tps / 1e3:.1f}k / {ISSUE['lm'] / 1e3:.0f}k",
                         *verdict(tps / ISSUE["lm"], lambda r: r >= 1.0), "", "", ""))
    return rows


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        got = parse(f.read().splitlines())
    kernels, lms = kernel_rows(got), lm_rows(got)
    if not kernels and not lms:
        print("(no hyla/reference pairs in this log)")
        return
    if kernels:
        print("Kernels: hyla / reference in time, against the issue's 2x target")
        print()
        print("| what | hyla | reference | hyla / reference (cost) | within 2x |")
        print("| --- | --- | --- | --- | --- |")
        for what, h, r, ratio in kernels:
            print(f"| {what} | {h} | {r} | {ratio:.2f} | {'yes' if ratio <= 2 else 'NO'} |")
    if lms:
        if kernels:
            print()
        print("134M LM training steps: hyla / reference, against the issue's targets "
              "(tokens/s >= 1.0, peak memory <= 1.0)")
        print()
        print("| model | T | hyla | reference | tokens/s hyla / reference | ratio | >= 1.0 "
              "| peak GiB hyla / reference | ratio | <= 1.0 |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in lms:
            print("| " + " | ".join(str(x) for x in r) + " |")


if __name__ == "__main__":
    main()
