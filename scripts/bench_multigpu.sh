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
# is shown as "failed" and its log kept in --out (default runs/bench-multigpu). Each point of
# more than one GPU is also trained with dist.collectives = "timed" (the milliseconds a step
# spends in collectives, rank 0's, from events around each) and "skipped" (tokens/s of the same
# step without communication); the communication share is 1 - tokens/s / tokens/s skipped.
# Weak sequence scaling's points also train with dist.overlap = false (LASP-2's AllGather and
# reduce-scatter waited for at once instead of overlapping the slice's own work).
#   scripts/bench_multigpu.sh [--gpus N] [--steps S] [--hyla BIN] [--out DIR]
#                             [--recipe FILE] [--gla LAYERS] [--device cpu] [--tokens T,T,T]
#                             [--models hybrid,gla] [--scalings weak,strong,dp,dpsp] [--no-comm]
# --device cpu runs the same plan on CPU ranks (a check of the script on a machine without
# GPUs); --recipe, --gla (the pure-GLA model's layers, default "gla x 12") and --tokens (the
# weak, strong and data-parallel lengths, default 8192,32768,2048) size it down for that.
# --models and --scalings run a part of the plan; --no-comm leaves out the two extra runs.
set -euo pipefail
usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; }
gpus="" steps=8 hyla=build/hyla out=runs/bench-multigpu recipe=recipes/hybrid-134m-gpu.toml
gla="gla x 12" device=cuda tokens=8192,32768,2048 models=hybrid,gla scalings=weak,strong,dp,dpsp
comm=1
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
  --models) models=$2; shift 2 ;;
  --scalings) scalings=$2; shift 2 ;;
  --no-comm) comm=0; shift ;;
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

# point NAME COLLECTIVES DP SP T BATCH MODEL_SETS...: global tokens/s of one run (median step
# after warm-up) and, with COLLECTIVES "timed", rank 0's median milliseconds a step in
# collectives; or "failed".
point() {
  local name=$1 coll=$2 dp=$3 sp=$4 T=$5 batch=$6
  shift 6
  local dir="$out/$name" ranks=$((dp * sp))
  local cmd=("$hyla" train "$recipe" "$@" --set "train.device=\"$device\"" --set "dist.dp=$dp"
    --set "dist.sp=$sp" --set "train.seq_len=$T" --set "train.batch=$batch"
    --set "train.steps=$((steps + 3))" --set train.log_every=1 --set train.eval_every=0
    --set train.checkpoint_every=0 --set "run.out=\"$dir\"" --set "dist.collectives=\"$coll\""
    --restart --quiet)
  [ "$device" = cuda ] || cmd+=(--set 'train.precision="f32"')
  if [ "$ranks" -gt 1 ]; then cmd=(mpirun --oversubscribe -np "$ranks" "${cmd[@]}"); fi
  if ! "${cmd[@]}" >"$out/$name.log" 2>&1; then
    echo failed
    return
  fi
  python3 - "$dir/metrics.jsonl" "$dp" <<'PY'
import json, statistics, sys
steps = [m for m in map(json.loads, open(sys.argv[1])) if "tokens_per_s" in m][3:]
if not steps:
    print("failed")
else:
    tps = round(statistics.median(m["tokens_per_s"] for m in steps) * int(sys.argv[2]))
    comm = [m["comm_s"] for m in steps if "comm_s" in m]
    text = ""
    if comm:  # the median total, then each kind's median that is not zero
        short = {"allreduce": "ar", "allgather": "ag", "reduce_scatter": "rs", "broadcast": "bc",
                 "send": "p2p"}
        kinds = [f"{short.get(k, k)} {1e3 * statistics.median(m['comm_s_by'][k] for m in steps):.1f}"
                 for k in steps[0].get("comm_s_by", {})]
        kinds = [k for k in kinds if not k.endswith(" 0.0")]
        text = f"{1e3 * statistics.median(comm):.1f}" + (f" ({', '.join(kinds)})" if kinds else "")
    print(tps, text.replace(" ", "_"))
PY
}

ratio() { # tokens/s at N, tokens/s at 1, N
  awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.0f%%", 100 * a / (n * b); else printf "-" }'
}

# row SCALING KEY N DP SP T BATCH: the table's row of one point (KEY: its base at N = 1).
row() {
  local scaling=$1 key=$2 n=$3 dp=$4 sp=$5 T=$6 batch=$7 tps timed="-" skipped="-" share="-"
  local serial="-"
  read -r tps _ <<<"$(point "$model-$key-$n" on "$dp" "$sp" "$T" "$batch" "${sets[@]}")"
  [ "$n" = 1 ] && [ "$key" != dpsp ] && base[$key]=$tps
  if [ "$comm" = 1 ] && [ "$n" -gt 1 ]; then
    read -r _ timed <<<"$(point "$model-$key-$n-timed" timed "$dp" "$sp" "$T" "$batch" "${sets[@]}")"
    read -r skipped _ <<<"$(point "$model-$key-$n-skipped" skipped "$dp" "$sp" "$T" "$batch" "${sets[@]}")"
    share=$(awk -v a="$tps" -v b="$skipped" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.0f%%", 100 * (1 - a / b); else printf "-" }')
    timed=${timed:--}
    timed=${timed//_/ }
    if [ "$key" = weak ]; then
      read -r serial _ <<<"$(point "$model-$key-$n-serial" on "$dp" "$sp" "$T" "$batch" "${sets[@]}" --set dist.overlap=false)"
    fi
  fi
  local b=${base[$key]:-}
  [ "$key" = dpsp ] && b=${base[weak]:-}
  echo "| $scaling | $n | $dp x $sp | $T | $tps | $(ratio "$tps" "$b" "$n") | $timed | $skipped | $share | $serial |"
}

has() { [[ ",$1," == *",$2,"* ]]; }

for model in hybrid gla; do
  has "$models" $model || continue
  sets=()
  [ $model = gla ] && sets=(--set "model.layers=\"$gla\"")
  echo
  echo "## $model ($recipe${sets:+, $gla}; $device)"
  echo
  echo "| scaling | N | dp x sp | T | tokens/s | efficiency | comm ms/step | tokens/s, no collectives | comm share | tokens/s, no overlap |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  declare -A base=()
  if has "$scalings" weak || has "$scalings" dpsp; then # dp x sp's efficiency is against weak's 1
    for n in "${sizes[@]}"; do
      has "$scalings" weak || [ "$n" = 1 ] || continue
      row "weak sequence" weak "$n" 1 "$n" $((t_weak * n)) 1
    done
  fi
  if has "$scalings" strong; then
    for n in "${sizes[@]}"; do row "strong sequence" strong "$n" 1 "$n" "$t_strong" 1; done
  fi
  if has "$scalings" dp; then
    for n in "${sizes[@]}"; do row "data parallel" dp "$n" "$n" 1 "$t_dp" 8; done
  fi
  if has "$scalings" dpsp; then
    for sp in 2 4; do
      [ $((2 * sp)) -le "$gpus" ] && row "dp x sp" dpsp $((2 * sp)) 2 "$sp" $((t_weak * sp)) 1
    done
  fi
  unset base
done
echo
echo "(efficiency: tokens/s at N over N x tokens/s on one; comm ms/step: rank 0's time in"
echo "collectives, timed apart, and by kind: ar allreduce, ag allgather, rs reduce-scatter, bc"
echo "broadcast, p2p point to point; comm share: 1 - tokens/s over tokens/s with collectives skipped;"
echo "no overlap: LASP-2's collectives waited for at once (dist.overlap = false); logs in $out)"
