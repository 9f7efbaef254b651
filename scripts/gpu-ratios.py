"""hyla against its references, from the tables of one scripts/gpu-check.sh run (bench.log): each
kernel's time and each 134M model's tokens/s and peak memory as a ratio hyla / reference in cost
(time, memory; for tokens/s the reference's over hyla's), next to the issue's target of 2x.
References: PyTorch's SDPA and eager LM and flash-linear-attention, where they ran in the same
check, and the issue's H100 bf16 figures (fixed numbers, another GPU) for comparison.
Usage: python3 scripts/gpu-ratios.py bench.log"""
import re
import sys

# The issue's H100 bf16 forward + backward figures (ms) and its LM's tokens/s.
ISSUE = {"gla": 2.03, "lightning": 1.72, "sdpa": 0.93, "lm": 240e3}


def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def number(text):
    try:
        return float(text)
    except ValueError:
        return None


def parse(lines):
    """{key: value}: ("attn", precision, pass) ms, ("sdpa", ...) ms, ("gla" | "lightning",
    "hyla" | "fla", pass) ms, ("lm", who, model, precision, T) -> (tokens/s, peak GiB)."""
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
        m = re.match(r"(hyla|torch) (.+?) (f32|bf16 matmuls|bf16 autocast) \d+M$", name)
        if m and len(c) >= 6:
            precision = "f32" if m.group(3) == "f32" else "bf16"
            got[("lm", m.group(1), m.group(2), precision, int(c[1]))] = (number(c[4]), number(c[5]))
    return got


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        got = parse(f.read().splitlines())
    rows = []

    def add(what, hyla, ref, ref_name, unit):
        if hyla is None or ref is None:
            return
        ratio = hyla / ref
        rows.append((what, f"{hyla:.3f} {unit}", f"{ref:.3f} {unit} ({ref_name})", ratio))

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
    for key, (tps, peak) in [(k, v) for k, v in got.items() if k[0] == "lm" and k[1] == "hyla"]:
        _, _, model, prec, T = key
        ref = got.get(("lm", "torch", "softmax", prec, T))
        what = f"{model} LM, {prec}{' matmuls' if prec == 'bf16' else ''}, T = {T}"
        if ref and tps:
            rows.append((f"{what}: tokens/s", f"{tps / 1e3:.1f}k", f"{ref[0] / 1e3:.1f}k "
                         f"(PyTorch softmax {'bf16 autocast' if prec == 'bf16' else 'f32'})",
                         ref[0] / tps))
            rows.append((f"{what}: peak GiB", f"{peak:.1f}", f"{ref[1]:.1f}", peak / ref[1]))
        if prec == "bf16" and T == 2048 and tps:
            rows.append((f"{what}: tokens/s", f"{tps / 1e3:.1f}k", "240k (issue's, H100)",
                         ISSUE["lm"] / tps))
    if not rows:
        print("(no hyla/reference pairs in this log)")
        return
    print("| what | hyla | reference | hyla / reference (cost) | within 2x |")
    print("| --- | --- | --- | --- | --- |")
    for what, h, r, ratio in rows:
        print(f"| {what} | {h} | {r} | {ratio:.2f} | {'yes' if ratio <= 2 else 'NO'} |")


if __name__ == "__main__":
    main()
