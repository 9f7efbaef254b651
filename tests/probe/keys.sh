# shellcheck shell=bash
# Every key of the recipe schema (read from docs/recipes.md, which the schema writes), given
# values at and past the edges of its type, in a recipe file with every mixer kind (sourced by
# probe.sh after cases.sh). `hyla train --check` must refuse the value with the key or its line
# named, or accept it; an accepted value must then train 2 steps without a crash.

huge=1152921504606846976 # 2^60

# The follow-up training of an accepted value, but not of values that ask for a run of that size
# (2^60 micro-batches to a step is what was asked for, not a hang).
trains_at() { # KEY VALUE
  case $1 in
  train.grad_accum | train.eval_batches | data.mqar.train_examples | data.mqar.val_examples)
    [ "${2#-}" -lt 1000 ] 2>/dev/null
    ;;
  esac
}

key_case() { # KEY TYPE VALUE
  local key=$1 value=$3 section=${1%.*} name=${1##*.} line sets=()
  begin "$key = $value"
  with_key k.toml "$section" "$name" "$value" "$in/zoo.toml"
  line=$(grep -nxF -- "$name = $value" k.toml | head -n 1 | cut -d: -f1)
  if [[ $key == data.mqar.* ]]; then # live only with the MQAR task
    sets=(--set 'data.dataset="mqar"')
    [ "$name" = pairs ] || sets+=(--set data.mqar.pairs=2)
  fi
  expect fail-or-ok "$name|k.toml:$line" "$hyla" train k.toml --check "${sets[@]}" || return
  [ "$last_rc" = 0 ] && trains_at "$key" "$value" || return
  [ "$key" = train.stop_after ] || sets+=(--set train.stop_after=2)
  expect any "" "$hyla" train k.toml --quiet "${sets[@]}"
}

recipe_keys() {
  local key type values v
  while IFS=$'\t' read -r key type; do
    case $type in
    integer) values=($big $past $huge 2147483648 -1 0) ;;
    float) values=(0 -1 nan inf 1e-9 1e300) ;;
    bool) values=(2) ;;
    enum) values=('"frobnicate"' '""') ;;
    string) values=('""') ;;
    *) values=('{}') ;;
    esac
    if $quick; then values=("${values[0]}"); fi
    for v in "${values[@]}"; do key_case "$key" "$type" "$v"; done
  done < <(awk '/^## \[/ { s = substr($2, 2, length($2) - 2) }
    /^\| `/ { split($0, f, "|"); k = f[2]; t = f[3]; gsub(/[ `]/, "", k); gsub(/^ +| +$/, "", t)
              print s "." k "\t" t }' "$root/docs/recipes.md")
}

group keys
recipe_keys
