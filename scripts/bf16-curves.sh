#!/usr/bin/env bash
# Mixed precision against f32 on the GPU: trains a recipe twice, with train.precision = "f32" and
# "bf16" (same seed, same batches), and compares the training loss at every logged step: prints
# each step's two losses and their relative difference, then the largest, and fails when that
# exceeds the bound (default 1%, issue 16's acceptance).
#   scripts/bf16-curves.sh [--hyla BIN] [--bound 0.01] [--out DIR] RECIPE [--set KEY=VALUE ...]
set -euo pipefail
usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; }
hyla=build/hyla bound=0.01 out=runs/bf16-curves recipe="" sets=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --hyla) hyla=$2; shift 2 ;;
    --bound) bound=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    *) [ -z "$recipe" ] || { usage >&2; exit 2; }; recipe=$1; shift ;;
  esac
done
[ -n "$recipe" ] || { usage >&2; exit 2; }
[ -x "$hyla" ] || { echo "bf16-curves.sh: no hyla at $hyla (--hyla BIN)" >&2; exit 2; }
for p in f32 bf16; do
  echo "== $recipe, train.precision = \"$p\""
  "$hyla" train "$recipe" "${sets[@]}" --set 'train.device="cuda"' --set "train.precision=\"$p\"" \
    --set "run.out=\"$out/$p\"" --set 'train.checkpoint_every=0' --restart
done
python3 - "$out/f32/metrics.jsonl" "$out/bf16/metrics.jsonl" "$bound" <<'PY'
import json, sys
def losses(path):
    return {m["step"]: m["loss"] for m in map(json.loads, open(path)) if "loss" in m}
f32, bf16, bound = losses(sys.argv[1]), losses(sys.argv[2]), float(sys.argv[3])
steps = sorted(set(f32) & set(bf16))
if not steps:
    sys.exit("bf16-curves: no logged step in common")
worst = (0.0, None)
print("| step | f32 loss | bf16 loss | relative difference |")
for s in steps:
    d = abs(bf16[s] - f32[s]) / abs(f32[s])
    worst = max(worst, (d, s))
    print(f"| {s} | {f32[s]:.6f} | {bf16[s]:.6f} | {d:.2e} |")
print(f"largest relative difference {worst[0]:.3e} at step {worst[1]} over {len(steps)} logged "
      f"steps (bound {bound:g}): {'ok' if worst[0] <= bound else 'FAIL'}")
sys.exit(0 if worst[0] <= bound else 1)
PY
