# shellcheck shell=bash
# Recipes mutated from the shipped ones (sourced by probe.sh): each of $mutants mutants is a
# shipped recipe with 1 to 3 token or line mutations (a value replaced by a hostile one, a key
# renamed, a line repeated, dropped or added) and 0 to 2 byte mutations (a byte changed, removed or
# inserted, the file cut short), drawn from a generator seeded with $seed, so that a run is
# repeated exactly. `hyla train --check` may accept or refuse each; a crash or a hang fails it,
# and the mutant is kept in $keep (probe-failures/ by default) to be replayed.

keep=${PROBE_KEEP:-$PWD/probe-failures}
rng=$seed
# rand N: r, a number in [0, N) (a 31-bit LCG; its high bits, the low ones are poor).
rand() {
  rng=$(((rng * 1103515245 + 12345) % 2147483648))
  r=$(((rng >> 8) % $1))
}
pick() { # pick WORD...: r, one of them
  rand $#
  shift $r
  r=$1
}

hostile=(0 -1 9223372036854775807 9223372036854775808 -9223372036854775809 2147483648
  4294967296 1152921504606846976 1e300 -1e300 1e-9 5e-324 nan inf -inf -0.0 1.5 0x7fffffff 1_0
  '""' '"x"' '"\u0000"' '"\u001b[2J"' '"../../x"' true '[]' '[1, 2]' '[""]' '["gla", "attn"]'
  '"gla x 64"' '"attn x 65"' '"titans_mal,titans_mag"' '{}' '[[[]]]' '"shakespeare"' '"mqar"')

mutate_lines() { # FILE: one token or line mutation, the file rewritten
  local -a lines
  mapfile -t lines <"$1"
  local count=${#lines[@]} i j kv
  [ "$count" -gt 0 ] || lines=("")
  count=${#lines[@]}
  rand "$count"
  i=$r
  rand 6
  case $r in
  0 | 1) # a value replaced
    if [[ ${lines[i]} == *=* ]]; then
      pick "${hostile[@]}"
      lines[i]="${lines[i]%%=*}= $r"
    fi
    ;;
  2) # a key renamed to another of the schema
    if [[ ${lines[i]} == *=* ]]; then
      pick "${schema_keys[@]}"
      lines[i]="${r##*.} =${lines[i]#*=}"
    fi
    ;;
  3) # a key of the schema added, with its section
    pick "${schema_keys[@]}"
    kv=$r
    pick "${hostile[@]}"
    lines+=("[${kv%.*}]" "${kv##*.} = $r")
    ;;
  4) # a line repeated or dropped
    rand 2
    if [ "$r" = 0 ]; then lines=("${lines[@]:0:i+1}" "${lines[@]:i}"); else unset 'lines[i]'; fi
    ;;
  5) # two lines swapped
    rand "$count"
    j=$r
    kv=${lines[i]}
    lines[i]=${lines[j]}
    lines[j]=$kv
    ;;
  esac
  printf '%s\n' "${lines[@]}" >"$1"
}

mutate_bytes() { # FILE: one byte mutation in place
  local size pos
  size=$(stat -c %s "$1")
  [ "$size" -gt 0 ] || return
  rand "$size"
  pos=$r
  rand 4
  case $r in
  0) # a byte changed to any value
    rand 256
    { head -c "$pos" "$1" && printf "\\$(printf %03o $r)" && tail -c +$((pos + 2)) "$1"; } >"$1.m" ;;
  1) # up to 8 bytes removed
    rand 8
    { head -c "$pos" "$1" && tail -c +$((pos + r + 2)) "$1"; } >"$1.m" ;;
  2) # a byte inserted
    rand 256
    { head -c "$pos" "$1" && printf "\\$(printf %03o $r)" && tail -c +$((pos + 1)) "$1"; } >"$1.m" ;;
  3) # cut short
    head -c "$pos" "$1" >"$1.m" ;;
  esac
  mv "$1.m" "$1"
}

mutants_run() {
  local shipped=("$root"/recipes/*.toml "$root"/recipes/ablations/*.toml) i k from edits
  mapfile -t schema_keys < <(awk '/^## \[/ { s = substr($2, 2, length($2) - 2) }
    /^\| `/ { split($0, f, "|"); k = f[2]; gsub(/[ `]/, "", k); print s "." k }' \
    "$root/docs/recipes.md")
  for ((i = 1; i <= mutants; i++)); do
    pick "${shipped[@]}"
    from=$r
    begin "mutant $i of ${from#"$root"/}"
    cp "$from" m.toml
    rand 3
    edits=$r
    for ((k = 0; k <= edits; k++)); do mutate_lines m.toml; done
    rand 3
    edits=$r
    for ((k = 0; k < edits; k++)); do mutate_bytes m.toml; done
    expect any "" "$hyla" train m.toml --check && continue
    mkdir -p "$keep" && cp m.toml "$keep/mutant-$seed-$i.toml"
    echo "         kept as $keep/mutant-$seed-$i.toml"
  done
}

group mutants
mutants_run
