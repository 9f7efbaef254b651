#!/usr/bin/env bash
# Several small runs at once on one device: `mpirun -np N hyla sweep` of N runs of one recipe
# (seeds 0 .. N-1; each rank trains one, on the same GPU, or on its own CPU core), against one run
# alone. Prints, as a Markdown table, each N's aggregate tokens/s (the sum of its runs'), tokens/s
# per run and the aggregate's ratio to one run alone: how much of a device one tiny model leaves
# idle, which a sweep can fill.
#   scripts/bench_sweep.sh [--device cpu|cuda] [--ranks N,N,...] [--steps S] [--recipe FILE]
#                          [--hyla BIN] [--out DIR]
# Defaults: cuda, ranks 1,2,4,8, 300 steps, the base model of
# recipes/ablations/gpu/mixers-mqar.toml (its [sweep] section left out: 2 softmax blocks,
# d = 64, MQAR at T = 256), build/hyla, runs/bench-sweep.
set -euo pipefail
usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }
device=cuda ranks=1,2,4,8 steps=300 recipe=recipes/ablations/gpu/mixers-mqar.toml
hyla=build/hyla out=runs/bench-sweep
while [ $# -gt 0 ]; do
  case "$1" in
  -h | --help) usage; exit 0 ;;
  --device) device=$2; shift 2 ;;
  --ranks) ranks=$2; shift 2 ;;
  --steps) steps=$2; shift 2 ;;
  --recipe) recipe=$2; shift 2 ;;
  --hyla) hyla=$2; shift 2 ;;
  --out) out=$2; shift 2 ;;
  *) usage >&2; exit 2 ;;
  esac
done
[ -x "$hyla" ] || { echo "bench_sweep.sh: no hyla at $hyla (--hyla BIN)" >&2; exit 2; }
[ -f "$recipe" ] || { echo "bench_sweep.sh: no recipe $recipe" >&2; exit 2; }
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 HYLA_THREADS=1 NCCL_NVLS_ENABLE=0
if [ "$device" = cuda ]; then
  echo "GPU: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
else
  echo "CPU: $(nproc) cores"
fi
echo
echo "| runs at once | aggregate tokens/s | tokens/s per run | aggregate / one alone | wall s |"
echo "| --- | --- | --- | --- | --- |"
alone=""
for n in ${ranks//,/ }; do
  dir="$out/np$n"
  rm -rf "$dir"
  mkdir -p "$dir"
  # the recipe without its [sweep] section (and its subsections), then N seeds
  awk '/^\[/ { skip = ($0 ~ /^\[sweep[].]/) } !skip' "$recipe" >"$dir/recipe.toml"
  printf '\n[sweep]\nseeds = [%s]\n' "$(seq -s, 0 $((n - 1)))" >>"$dir/recipe.toml"
  sets=(--set "run.out=\"$dir/runs\"" --set "train.steps=$steps" --set "train.device=\"$device\""
    --set train.eval_every=0 --set train.checkpoint_every=0)
  [ "$device" = cuda ] || sets+=(--set 'train.precision="f32"')
  t0=$(date +%s.%N)
  if ! mpirun --oversubscribe -np "$n" "$hyla" sweep "$dir/recipe.toml" "${sets[@]}" \
    >"$dir/sweep.log" 2>&1; then
    echo "| $n | failed (see $dir/sweep.log) | | | |"
    continue
  fi
  wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  python3 - "$dir/runs" "$n" "${alone:-0}" "$wall" <<'PY'
import glob, json, sys
runs, n, alone, wall = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
tps = [json.load(open(f))["tokens_per_s"] for f in glob.glob(f"{runs}/*/result.json")]
if len(tps) != n:
    print(f"| {n} | failed ({len(tps)} of {n} runs finished) | | | {wall} |")
else:
    total = sum(tps)
    ratio = "1.00x" if n == 1 else f"{total / alone:.2f}x" if alone > 0 else "-"
    print(f"| {n} | {total:.0f} | {total / n:.0f} | {ratio} | {wall} |")
PY
  if [ "$n" = 1 ]; then # the base of the ratios
    alone=$(python3 -c 'import glob, json, sys; print(sum(json.load(open(f))["tokens_per_s"] for f in glob.glob(sys.argv[1] + "/*/result.json")))' "$dir/runs")
  fi
done
echo
echo "(tokens/s of each run over its training, from its result.json; runs in $out)"
