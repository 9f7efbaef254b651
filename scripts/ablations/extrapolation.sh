#!/usr/bin/env bash
# Ablation 5 in one command: train the length-extrapolation sweep, then evaluate its final
# checkpoints at longer sequences.
#   scripts/ablations/extrapolation.sh recipes/ablations/extrapolation.toml [LENGTH...]
#   scripts/ablations/extrapolation.sh SWEEP_DIR [LENGTH...]     (evaluate only)
# Given the recipe, trains its sweep first (`hyla sweep`, which skips finished runs): under
# `mpirun -np $NP -x HYLA_THREADS=1` where mpirun is installed (NP, default 2; NP=1 trains in this
# process). Then, for each finished run of the sweep directory, runs
# `hyla eval CKPT --seq-len T --batches B` on its newest checkpoint for each length (default
# 128 256 512 1024 2048; B = $BATCHES, default 4) and writes SWEEP_DIR/extrapolation.csv (one row
# per run and length) and SWEEP_DIR/extrapolation.md (validation loss per setting and length: the
# mean and sample standard deviation over the seeds). Runs with eval_power other than 1.0 and no
# softplus layer repeat an eval_power = 1.0 run and are skipped; a softplus run whose sweep did not
# set eval_power is evaluated at each power of $POWERS (default "1.0 2.0": LSSA and LSSAR's
# re-weighting) through `hyla eval --set`. HYLA (default build/hyla) names the binary.
set -euo pipefail

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  "") usage >&2; exit 2 ;;
esac
dir="${1%/}"
shift
lengths=("$@")
[ ${#lengths[@]} -gt 0 ] || lengths=(128 256 512 1024 2048)
hyla="${HYLA:-build/hyla}"
batches="${BATCHES:-4}"
POWERS="${POWERS:-1.0 2.0}"
if [ -f "$dir" ]; then # a recipe: train its sweep, then evaluate the sweep's directory
  recipe=$dir
  dir=$("$hyla" sweep "$recipe" --dry-run 2>/dev/null | sed -n 's/^sweep .*: [0-9]* runs in //p')
  [ -n "$dir" ] || { echo "extrapolation.sh: $recipe is not a sweep recipe" >&2; exit 1; }
  np="${NP:-2}"
  if [ "$np" -gt 1 ] && command -v mpirun >/dev/null; then
    mpirun --oversubscribe -np "$np" -x HYLA_THREADS=1 "$hyla" sweep "$recipe"
  else
    "$hyla" sweep "$recipe"
  fi
fi
[ -d "$dir" ] || { echo "extrapolation.sh: $dir does not exist" >&2; exit 1; }

csv="$dir/extrapolation.csv"
echo "setting,seed,seq_len,val_loss" >"$csv"
for run in "$dir"/*/; do
  run="${run%/}"
  name=$(basename "$run")
  [ -f "$run/result.json" ] || { echo "skip $name (not finished)" >&2; continue; }
  case "$name" in
    *softplus*) ;;
    *eval_power=1.0,*) ;;
    *eval_power=*) continue ;;
  esac
  ckpt=$(ls "$run"/ckpt-*.h5 2>/dev/null | sort | tail -1)
  [ -n "$ckpt" ] || { echo "skip $name (no checkpoint)" >&2; continue; }
  setting="${name%,seed=*}"
  seed="${name##*,seed=}"
  # A softplus run the sweep did not train per eval_power is evaluated at each of $POWERS.
  powers=(keep)
  case "$name" in *softplus*) [[ "$name" == *eval_power=* ]] || read -ra powers <<<"$POWERS" ;; esac
  for p in "${powers[@]}"; do
    sets=() label=$setting
    [ "$p" = keep ] || { sets=(--set "layer.softplus.eval_power=$p"); label="eval_power=$p,$setting"; }
    for t in "${lengths[@]}"; do
      loss=$("$hyla" eval "$ckpt" --seq-len "$t" --batches "$batches" "${sets[@]}" 2>/dev/null |
        awk '$1 == "loss" { print $2 }')
      [ -n "$loss" ] || { echo "extrapolation.sh: hyla eval $ckpt --seq-len $t ${sets[*]} failed" >&2; exit 1; }
      echo "$label seed $seed T=$t loss $loss"
      echo "\"$label\",$seed,$t,$loss" >>"$csv"
    done
  done
done

# Mean and sample standard deviation over the seeds, one row per setting, one column per length.
awk -F, -v lens="${lengths[*]}" '
  NR == 1 { next }
  { t = $(NF - 1); v = $NF; s = $0; sub(/,[^,]*,[^,]*,[^,]*$/, "", s); gsub(/"/, "", s)
    if (!(s in seen)) { seen[s] = 1; order[++n] = s }
    k = s SUBSEP t; sum[k] += v; sq[k] += v * v; cnt[k]++ }
  END {
    m = split(lens, L, " ")
    line = "| setting |"; rule = "| --- |"
    for (j = 1; j <= m; j++) { line = line " T = " L[j] " |"; rule = rule " --- |" }
    print "Validation loss (nats per byte) at each evaluation length: mean ± sample std over seeds.\n"
    print line; print rule
    for (i = 1; i <= n; i++) {
      line = "| " order[i] " |"
      for (j = 1; j <= m; j++) {
        k = order[i] SUBSEP L[j]
        if (!(k in cnt)) { line = line " |"; continue }
        mean = sum[k] / cnt[k]
        if (cnt[k] > 1) {
          var = (sq[k] - cnt[k] * mean * mean) / (cnt[k] - 1); if (var < 0) var = 0
          line = line sprintf(" %.4f ± %.4f (%d) |", mean, sqrt(var), cnt[k])
        } else line = line sprintf(" %.4f (1) |", mean)
      }
      print line
    }
  }' "$csv" >"$dir/extrapolation.md"
echo "wrote $csv and $dir/extrapolation.md"
