#!/usr/bin/env bash
# Scaling over the GPUs of one machine: trains the 134M models of recipes/hybrid-134m-gpu.toml
# (the 3:1 GLA/attention hybrid, and pure GLA) for a few steps under mpirun at each size and
# prints global tokens/s and the efficiency against one GPU, as Markdown tables:
#   weak sequence scaling   T = 8192 per GPU, sp = N (LASP-2; LASP-2H for the softmax layers)
#   strong sequence scaling T = 32768 split over sp = N
#   data parallel           dp = N at T = 2048 (batch 8 per replica)
#   dp x sp                 2 x 2 and 2 x 4, T = 8192 per GPU
# for N = 1, 2, 4, 8 up to --gpus (default: the GPUs nvidia-smi lists). Efficiency is tokens/s at
# N over N times tokens/s on one GPU (strong scaling: the speed-up over N). Each point is the
# median step of --steps (default 8) after 3 warm-up steps; a point that fails (out of memory)
# is shown as "failed" and its log kept in --out (default runs/bench-multigpu).
#   scripts/bench_multigpu.sh [--gpus N] [--steps S] [--hyla BIN] [--out DIR]
#                             [--recipe FILE] [--gla LAYERS] [--device cpu] [--tokens T,T,T]
# --device cpu runs the same plan on CPU ranks (a check of the script on a machine without
# GPUs); --recipe, --gla (the pure-GLA model's layers, default "gla x 12") and --tokens (the
# weak, strong and data-parallel lengths, default 8192,32768,2048) size it down for that.
set -euo pipefail
usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
gpus="" steps=8 hyla=build/hyla out=runs/bench-multigpu recipe=recipes/hybrid-134m-gpu.toml
gla="gla x 12" device=cuda tokens=8192,32768,2048
while [ $# -gt 0 ]; do
  case "$1" in
  -h | --help) usage; exit 0 ;;
  --gpus) gpus=$2; shift 2 ;;
  --steps) steps=$2; shift 2 ;;
  --hyla) hyla=$2; shift 2 ;;
  --out) out=$2; shift 2 ;;
  --recipe) recipe=$2; shift 2 ;;
  --gla) gla=$2; shift 2 ;;
  --device) device=$2; shift 2 ;;
  --tokens) tokens=$2; shift 2 ;;
  *) usage >&2; exit 2 ;;
  esac
done
[ -x "$hyla" ] || { echo "bench_multigpu.sh: no hyla at $hyla (--hyla BIN)" >&2; exit 2; }
IFS=, read -r t_weak t_strong t_dp <<<"$tokens"
if [ -z "$gpus" ]; then
  if [ "$device" = cuda ]; then gpus=$(nvidia-smi -L | wc -l); else gpus=$(nproc); fi
fi
sizes=()
for n in 1 2 4 8; do [ "$n" -le "$gpus" ] && sizes+=("$n"); done
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NCCL_NVLS_ENABLE=0 HYLA_THREADS=1
[ "$device" = cuda ] && echo "GPUs: $(nvidia-smi --query-gpu=name --format=csv,noheader | sort | uniq -c | xargs)"

# point NAME DP SP T BATCH MODEL_SETS...: global tokens/s of one run (median step after warm-up),
# or "failed".
point() {
  local name=$1 dp=$2 sp=$3 T=$4 batch=$5
  shift 5
  local dir="$out/$name" ranks=$((dp * sp))
  local cmd=("$hyla" train "$recipe" "$@" --set "train.device=\"$device\"" --set "dist.dp=$dp"
    --set "dist.sp=$sp" --set "train.seq_len=$T" --set "train.batch=$batch"
    --set "train.steps=$((steps + 3))" --set train.log_every=1 --set train.eval_every=0
    --set train.checkpoint_every=0 --set "run.out=\"$dir\"" --restart --quiet)
  [ "$device" = cuda ] || cmd+=(--set 'train.precision="f32"')
  if [ "$ranks" -gt 1 ]; then cmd=(mpirun --oversubscribe -np "$ranks" "${cmd[@]}"); fi
  if ! "${cmd[@]}" >"$out/$name.log" 2>&1; then
    echo failed
    return
  fi
  python3 - "$dir/metrics.jsonl" "$dp" <<'PY'
import json, statistics, sys
steps = [m for m in map(json.loads, open(sys.argv[1])) if "tokens_per_s" in m][3:]
print(round(statistics.median(m["tokens_per_s"] for m in steps) * int(sys.argv[2])) if steps else "failed")
PY
}

ratio() { # tokens/s at N, tokens/s at 1, N
  awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.0f%%", 100 * a / (n * b); else printf "-" }'
}

for model in hybrid gla; do
  sets=()
  [ $model = gla ] && sets=(--set "model.layers=\"$gla\"")
  echo
  echo "## $model ($recipe${sets:+, $gla}; $device)"
  echo
  echo "| scaling | N | dp x sp | T | tokens/s | efficiency |"
  echo "| --- | --- | --- | --- | --- | --- |"
  declare -A base=()
  for n in "${sizes[@]}"; do
    tps=$(point "$model-weak-$n" 1 "$n" $((t_weak * n)) 1 "${sets[@]}")
    [ "$n" = 1 ] && base[weak]=$tps
    echo "| weak sequence | $n | 1 x $n | $((t_weak * n)) | $tps | $(ratio "$tps" "${base[weak]}" "$n") |"
  done
  for n in "${sizes[@]}"; do
    tps=$(point "$model-strong-$n" 1 "$n" "$t_strong" 1 "${sets[@]}")
    [ "$n" = 1 ] && base[strong]=$tps
    echo "| strong sequence | $n | 1 x $n | $t_strong | $tps | $(ratio "$tps" "${base[strong]}" "$n") |"
  done
  for n in "${sizes[@]}"; do
    tps=$(point "$model-dp-$n" "$n" 1 "$t_dp" 8 "${sets[@]}")
    [ "$n" = 1 ] && base[dp]=$tps
    echo "| data parallel | $n | $n x 1 | $t_dp | $tps | $(ratio "$tps" "${base[dp]}" "$n") |"
  done
  for sp in 2 4; do
    n=$((2 * sp))
    [ "$n" -le "$gpus" ] || continue
    tps=$(point "$model-dpsp-$n" 2 "$sp" $((t_weak * sp)) 1 "${sets[@]}")
    echo "| dp x sp | $n | 2 x $sp | $((t_weak * sp)) | $tps | $(ratio "$tps" "${base[weak]}" "$n") |"
  done
  unset base
done
echo
echo "(efficiency: tokens/s at N over N x tokens/s on one; logs in $out)"
