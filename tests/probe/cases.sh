# shellcheck shell=bash
# The hand-made cases (sourced by probe.sh after the fixtures), one function per class of input.
# Recipes come from $in (tiny.toml: d = 16, GLA and attention; zoo.toml: every mixer kind), with
# --set overrides or written whole; each case runs in a fresh folder (lib.sh).

big=9223372036854775807  # 2^63 - 1
past=9223372036854775808 # 2^63: past 64 bits
bad_utf8=$'\xff\xfe\xc0\x80'
ctrl=$'\x01\x1b[2J\x7f'

# flip FILE OFFSET [MASK]: xor one byte of FILE in place (default: its lowest bit).
flip() {
  local byte
  byte=$(od -An -tu1 -j"$2" -N1 "$1" | tr -d ' ')
  # shellcheck disable=SC2059 # the format is the byte
  printf "\\$(printf %03o $((byte ^ ${3:-1})))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# with_key FILE SECTION KEY VALUE [BASE]: the recipe BASE (tiny.toml) with KEY = VALUE in SECTION,
# written into the file (not --set: the error must name the key, or the file's line, itself).
with_key() {
  awk -v s="[$2]" -v key="$3" -v line="$3 = $4" '
    /^\[/ { in_s = ($0 == s) }
    in_s && $1 == key && $2 == "=" { next }
    { print }
    $0 == s { print line; done = 1 }
    END { if (!done) { print s; print line } }' "${5:-$in/tiny.toml}" >"$1"
}

cli_options() {
  local t=$in/tiny.h5
  begin "no command"
  expect fail "usage" "$hyla"
  begin "an unknown command"
  expect fail "frobnicate" "$hyla" frobnicate
  begin "train without a recipe"
  expect fail "needs a recipe" "$hyla" train
  begin "train with an unknown option"
  expect fail "--frobnicate" "$hyla" train "$in/tiny.toml" --frobnicate
  begin "train with two recipes"
  expect fail "more than one recipe" "$hyla" train "$in/tiny.toml" "$in/zoo.toml"
  begin "train --resume with --restart"
  expect fail "--restart" "$hyla" train "$in/tiny.toml" --resume --restart
  begin "eval --batches 2^63 - 1: the token count overflows"
  expect fail "--batches" "$hyla" eval "$t" --batches $big
  begin "eval --batches past 64 bits"
  expect fail "--batches" "$hyla" eval "$t" --batches $past
  begin "eval --batches -1"
  expect fail "--batches" "$hyla" eval "$t" --batches -1
  begin "eval --batches 1e3 (not a whole number)"
  expect fail "--batches" "$hyla" eval "$t" --batches 1e3
  begin "eval --seq-len 2^63 - 1"
  expect fail "--seq-len" "$hyla" eval "$t" --seq-len $big
  begin "eval --seq-len 2^40: past the validation split"
  expect fail "--seq-len|seq_len" "$hyla" eval "$t" --seq-len 1099511627776
  begin "eval --seq-len 0"
  expect fail "--seq-len" "$hyla" eval "$t" --seq-len 0
  begin "eval --seq-len 33 (longer than trained): runs"
  expect ok "" "$hyla" eval "$t" --seq-len 33 --batches 1
  begin "generate --tokens 2^63 - 1"
  expect fail "--tokens" "$hyla" generate "$t" --tokens $big
  begin "generate --tokens -1"
  expect fail "--tokens" "$hyla" generate "$t" --tokens -1
  begin "generate --tokens 0x10"
  expect fail "--tokens" "$hyla" generate "$t" --tokens 0x10
  begin "generate --temperature nan"
  expect fail "--temperature" "$hyla" generate "$t" --temperature nan
  begin "generate --temperature -inf"
  expect fail "--temperature" "$hyla" generate "$t" --temperature -inf
  local greedy all
  greedy=$("$hyla" generate "$t" --temperature 0 --tokens 30 | od -An -c)
  all=$("$hyla" generate "$t" --top-k 0 --tokens 30 --seed 7 | od -An -c)
  begin "generate --temperature 1e-300: the greedy text"
  expect ok "" "$hyla" generate "$t" --temperature 1e-300 --tokens 30 &&
    check wrong "not the text of --temperature 0" test "$(od -An -c "$log.out")" = "$greedy"
  begin "generate --temperature 1e300 (near uniform)"
  expect ok "" "$hyla" generate "$t" --temperature 1e300 --tokens 8
  begin "generate --top-k 2^63 - 1: the text of --top-k 0 (all of the vocabulary)"
  expect ok "" "$hyla" generate "$t" --top-k $big --tokens 30 --seed 7 &&
    check wrong "not the text of --top-k 0" test "$(od -An -c "$log.out")" = "$all"
  begin "generate --seed past 64 bits"
  expect fail "--seed" "$hyla" generate "$t" --seed 18446744073709551616
  begin "generate with a prompt of 100,000 bytes and 2^20 - 1 tokens: too many positions"
  expect fail "prompt" "$hyla" generate "$t" --prompt "$(head -c 100000 /dev/zero | tr '\0' a)" --tokens 1048575
  begin "generate with control characters and invalid UTF-8 in the prompt"
  expect ok "" "$hyla" generate "$t" --prompt "$ctrl$bad_utf8" --tokens 8
  begin "generate with --prompt and no value"
  expect fail "--prompt" "$hyla" generate "$t" --prompt
  begin "data prepare --val-fraction 0"
  expect fail "--val-fraction" "$hyla" data prepare "$in/text.txt" out.h5 --val-fraction 0
  begin "data prepare --val-fraction nan"
  expect fail "--val-fraction" "$hyla" data prepare "$in/text.txt" out.h5 --val-fraction nan
  begin "data prepare --val-fraction 0.51"
  expect fail "--val-fraction" "$hyla" data prepare "$in/text.txt" out.h5 --val-fraction 0.51
  begin "data prepare --val-fraction 1e-300: a split of no bytes"
  expect any "" "$hyla" data prepare "$in/text.txt" out.h5 --val-fraction 1e-300
  [ -f out.h5 ] && expect fail "val|out.h5" "$hyla" train "$in/tiny.toml" --set "data.dataset=\"$PWD/out.h5\""
  begin "data with an unknown subcommand"
  expect fail "frobnicate" "$hyla" data frobnicate
  begin "data prepare with one path"
  expect fail "OUT.h5" "$hyla" data prepare "$in/text.txt"
  begin "data prepare with three paths"
  expect fail "c.h5" "$hyla" data prepare "$in/text.txt" b.h5 c.h5
  begin "demo --steps past 64 bits"
  expect fail "--steps" "$hyla" demo --steps $past
  begin "demo --threads 1025"
  expect fail "--threads" "$hyla" demo --threads 1025
  begin "demo --threads -1"
  expect fail "--threads" "$hyla" demo --threads -1
  begin "sweep with an unknown option"
  expect fail "--frobnicate" "$hyla" sweep "$in/tiny.toml" --frobnicate
  begin "info with two checkpoints"
  expect any "" "$hyla" info "$t" "$t"
}

set_syntax() {
  local s
  for s in "" "=" "train.batch" "train.batch=" ".batch=1" "train.=1" "train..batch=1" \
    "train.batch==1" "train.batch=1 2" "train.batch=[" 'train.batch="' "train.batch=1=2" \
    'run.name="a' "model.layers=[\"gla\"" "train.batch=08" "train.batch=1_" "optim.lr=.e1" \
    "optim.lr=1e" "model.tied_embeddings=yes" "optim.betas=[0.9, 0.95, 0.99]"; do
    begin "--set '$s'"
    expect fail "--set" "$hyla" train "$in/tiny.toml" --check --set "$s"
  done
  begin "--set of an unknown key"
  expect fail "frobnicate" "$hyla" train "$in/tiny.toml" --check --set train.frobnicate=1
  begin "--set of an unknown section"
  expect fail "frobnicate" "$hyla" train "$in/tiny.toml" --check --set frobnicate.batch=1
  begin "--set of a key of an unknown layer kind"
  expect fail "frobnicate" "$hyla" train "$in/tiny.toml" --check --set layer.frobnicate.chunk=1
  begin "--set with a 100,000-character key"
  expect fail "--set" "$hyla" train "$in/tiny.toml" --check --set "train.$(printf 'b%.0s' $(seq 100000))=1"
  begin "--set with a 100,000-digit value"
  expect fail "batch" "$hyla" train "$in/tiny.toml" --check --set "train.batch=$(printf '9%.0s' $(seq 100000))"
  begin "--set with control characters in a string"
  expect any "" "$hyla" train "$in/tiny.toml" --check --set "run.name=\"$ctrl\""
  begin "--set without its value"
  expect fail "--set" "$hyla" train "$in/tiny.toml" --check --set
}

recipe_files() {
  begin "a recipe that does not exist"
  expect fail "nothing.toml" "$hyla" train nothing.toml --check
  begin "a directory as the recipe"
  mkdir adir
  expect fail "adir" "$hyla" train adir --check
  begin "an empty recipe (every key has a default)"
  : >empty.toml
  expect ok "" "$hyla" train empty.toml --check
  begin "a recipe through a symlink"
  ln -s "$in/tiny.toml" link.toml
  expect ok "" "$hyla" train link.toml --check
  begin "a dangling symlink as the recipe"
  ln -s nowhere.toml dangling.toml
  expect fail "dangling.toml" "$hyla" train dangling.toml --check
  begin "the dataset (HDF5) as the recipe"
  expect fail "data.h5" "$hyla" train "$in/data.h5" --check
  begin "a checkpoint as the recipe"
  expect fail "tiny.h5" "$hyla" train "$in/tiny.h5" --check
  begin "/dev/zero as the recipe: endless NUL bytes"
  expect fail "/dev/zero" "$hyla" train /dev/zero --check
  local size cut i
  size=$(stat -c %s "$root/recipes/quickstart.toml")
  for cut in 1 $((size / 3)) $((size / 2)) $((size - 2)); do
    begin "the quickstart recipe cut to $cut of its $size bytes"
    head -c "$cut" "$root/recipes/quickstart.toml" >cut.toml
    expect fail-or-ok "cut.toml" "$hyla" train cut.toml --check
  done
  for i in 1 3 5 7; do
    begin "the quickstart recipe with bit 6 of byte $((size * i / 8)) flipped"
    cp "$root/recipes/quickstart.toml" flipped.toml
    flip flipped.toml $((size * i / 8)) 64
    expect fail-or-ok "flipped.toml" "$hyla" train flipped.toml --check
  done
  begin "a recipe with a NUL byte"
  printf '[train]\nbatch = 2\0\n' >nul.toml
  expect fail "nul.toml" "$hyla" train nul.toml --check
  begin "a recipe of 1 MiB of random bytes"
  head -c 1048576 /dev/urandom >random.toml
  expect fail "random.toml" "$hyla" train random.toml --check
  begin "a recipe line of 1,000,000 characters"
  { echo "[run]" && printf 'name = "%s"\n' "$(head -c 1000000 /dev/zero | tr '\0' a)"; } >long.toml
  expect fail "long.toml" "$hyla" train long.toml --check
  begin "a recipe of 10,000 lines of comments"
  { cat "$in/tiny.toml" && yes "# a comment" | head -n 10000; } >comments.toml
  expect ok "" "$hyla" train comments.toml --check
  begin "an array nested 100,000 deep over many lines"
  { echo "[model]" && echo "layers = " && yes '[' | head -n 100000; } >nested.toml
  expect fail "nested.toml" "$hyla" train nested.toml --check
  begin "CRLF line ends"
  sed 's/$/\r/' "$in/tiny.toml" >crlf.toml
  expect any "" "$hyla" train crlf.toml --check
  begin "a UTF-8 byte-order mark"
  { printf '\xef\xbb\xbf' && cat "$in/tiny.toml"; } >bom.toml
  expect any "" "$hyla" train bom.toml --check
  begin "invalid UTF-8 in a string"
  with_key utf8.toml run name "\"$bad_utf8\""
  expect any "" "$hyla" train utf8.toml --check
  begin "control characters in run.out"
  with_key ctrl.toml run out "\"run\\u0001\\u001b\""
  expect any "" "$hyla" train ctrl.toml --check
  begin "a run name of 10,000 characters"
  with_key name.toml run name "\"$(head -c 10000 /dev/zero | tr '\0' a)\""
  expect fail "name.toml" "$hyla" train name.toml --check
  begin "an empty run.out"
  with_key out.toml run out '""'
  expect fail "out" "$hyla" train out.toml --check
  begin "a run.out of 190 bytes (at most 189)"
  with_key out.toml run out "\"$(head -c 190 /dev/zero | tr '\0' o)\""
  expect fail "out" "$hyla" train out.toml --check
  begin "a key twice"
  with_key twice.toml train batch 4 && sed -i 's/^batch = 4$/&\nbatch = 2/' twice.toml
  expect fail "batch" "$hyla" train twice.toml --check
  begin "a section twice"
  { cat "$in/tiny.toml" && printf '[train]\nsteps = 3\n'; } >twice.toml
  expect any "" "$hyla" train twice.toml --check
  begin "a key before any section"
  { echo "batch = 2" && cat "$in/tiny.toml"; } >nosection.toml
  expect fail "batch" "$hyla" train nosection.toml --check
  begin "an unknown key (a typo)"
  with_key typo.toml train bacth 2
  expect fail "bacth" "$hyla" train typo.toml --check
  begin "an unknown section"
  { cat "$in/tiny.toml" && printf '[trian]\nbatch = 2\n'; } >typo.toml
  expect fail "trian" "$hyla" train typo.toml --check
  local k v
  while IFS='|' read -r k v; do
    begin "wrong type: $k = $v"
    with_key t.toml "${k%.*}" "${k##*.}" "$v"
    expect fail "${k##*.}" "$hyla" train t.toml --check
  done <<'LIST'
train.batch|"8"
train.batch|1.5
train.batch|true
train.batch|[8]
train.batch|-0x10
optim.lr|"3e-4"
optim.lr|[3e-4]
optim.lr|nan
optim.lr|inf
optim.lr|-inf
model.layers|5
model.layers|[]
model.layers|["frobnicate"]
model.layers|["gla", 5]
model.layers|"gla x 9223372036854775807"
model.layers|"gla x 65"
model.tied_embeddings|1
optim.betas|[0.9]
optim.betas|[0.9, 1.0]
optim.betas|0.9
optim.no_decay|[1]
optim.no_decay|["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q"]
train.precision|"f16"
train.device|"tpu"
run.name|{ a = 1 }
run.name|1979-05-27
data.dataset|"""x"""
LIST
}

sweeps() {
  local axis name v='[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]'
  while IFS='|' read -r name axis; do
    begin "[sweep] $axis"
    printf '[sweep]\n%s\n' "$axis" | cat "$in/tiny.toml" - >sweep.toml
    expect fail "$name" "$hyla" sweep sweep.toml --dry-run
  done <<LIST
train.batch|"train.batch" = [2, 9223372036854775807]
seeds|seeds = [-1]
seeds|seeds = []
optim.lr|"optim.lr" = [1e-3, 1e-3]
run.out|"run.out" = ["a", "b"]
frobnicate|"train.frobnicate" = [1, 2]
LIST
  begin "[sweep] of 16^3 runs"
  printf '[sweep]\n"train.steps" = %s\n"train.batch" = %s\n"optim.warmup" = %s\n' $v $v $v |
    cat "$in/tiny.toml" - >sweep.toml
  expect fail "runs" "$hyla" sweep sweep.toml --dry-run
}

datasets() {
  local d=data.dataset
  begin "a dataset that does not exist"
  expect fail "nothing.h5" "$hyla" train "$in/tiny.toml" --set "$d=\"$PWD/nothing.h5\""
  begin "a directory as the dataset"
  mkdir ddir
  expect fail "ddir" "$hyla" train "$in/tiny.toml" --set "$d=\"$PWD/ddir\""
  begin "an empty dataset file"
  : >empty.h5
  expect fail "empty.h5" "$hyla" train "$in/tiny.toml" --set "$d=\"$PWD/empty.h5\""
  begin "a text file as the dataset"
  expect fail "text.txt" "$hyla" train "$in/tiny.toml" --set "$d=\"$in/text.txt\""
  begin "a checkpoint as the dataset"
  expect fail "tiny.h5" "$hyla" train "$in/tiny.toml" --set "$d=\"$in/tiny.h5\""
  begin "a dataset through a symlink"
  ln -s "$in/data.h5" link.h5
  expect ok "" "$hyla" train "$in/tiny.toml" --quiet --set "$d=\"$PWD/link.h5\""
  begin "a dataset of bytes for a model of 16 tokens: tokens past the vocabulary"
  expect fail "vocab" "$hyla" train "$in/tiny.toml" --set model.vocab=16
  begin "sequences longer than the dataset's splits"
  expect fail "seq_len|data.h5" "$hyla" train "$in/tiny.toml" --set train.seq_len=100000
  local size cut
  size=$(stat -c %s "$in/data.h5")
  for cut in 1 2 800 $((size / 2)) $((size - 1)); do
    begin "a dataset truncated to $cut of its $size bytes"
    head -c "$cut" "$in/data.h5" >cut.h5
    expect fail "cut.h5" "$hyla" train "$in/tiny.toml" --set "$d=\"$PWD/cut.h5\""
  done
  local i
  for i in 1 3 5 7 9 11 13 15; do
    begin "a dataset with bit 4 of byte $((size * i / 16)) flipped"
    cp "$in/data.h5" flipped.h5
    flip flipped.h5 $((size * i / 16)) 16
    expect any "" "$hyla" train "$in/tiny.toml" --quiet --set "$d=\"$PWD/flipped.h5\""
  done
}

checkpoints() {
  local sub
  for sub in eval generate info; do
    begin "$sub of a checkpoint that does not exist"
    expect fail "nothing.h5" "$hyla" $sub nothing.h5
    begin "$sub of a directory"
    mkdir cdir
    expect fail "cdir" "$hyla" $sub cdir
    begin "$sub of an empty file"
    : >empty.h5
    expect fail "empty.h5" "$hyla" $sub empty.h5
    begin "$sub of the dataset"
    expect fail "data.h5" "$hyla" $sub "$in/data.h5"
    begin "$sub of a text file"
    expect fail "text.txt" "$hyla" $sub "$in/text.txt"
  done
  begin "eval of a checkpoint through a symlink"
  ln -s "$in/tiny.h5" link.h5
  expect ok "" "$hyla" eval link.h5
  local size cut
  size=$(stat -c %s "$in/tiny.h5")
  for cut in 8 $((size / 3)) $((size / 2)) $((size - 1)); do
    begin "eval of a checkpoint truncated to $cut of its $size bytes"
    head -c "$cut" "$in/tiny.h5" >cut.h5
    expect fail "cut.h5" "$hyla" eval cut.h5
  done
  # A flipped bit is refused, or it lies where eval does not read (the loss is the same).
  local i loss
  for i in $(seq 1 31); do
    begin "eval of a checkpoint with bit 4 of byte $((size * i / 32)) flipped"
    cp "$in/tiny.h5" flipped.h5
    flip flipped.h5 $((size * i / 32)) 16
    expect any "" "$hyla" eval flipped.h5 || continue
    loss=$(awk '$1 == "loss" {print $2}' "$log.out")
    if [ "$last_rc" = 0 ]; then
      check wrong "exit 0 with loss $loss, not $tiny_loss: the damage went unnoticed" \
        test "$loss" = "$tiny_loss"
    else
      check wrong "the error does not name flipped.h5" grep -qF flipped.h5 "$log.err"
    fi
  done
  begin "--resume from a checkpoint with a flipped bit in its optimizer state"
  cp "$in/tiny.h5" flipped.h5
  flip flipped.h5 $((size * 3 / 4)) 16
  expect any "" "$hyla" train "$in/tiny.toml" --quiet --resume="$PWD/flipped.h5" --set train.steps=3
  begin "--resume from another model's checkpoint"
  expect fail "zoo.h5" "$hyla" train "$in/tiny.toml" --resume="$in/zoo.h5" --set train.steps=3
  begin "--resume from the dataset"
  expect fail "data.h5" "$hyla" train "$in/tiny.toml" --resume="$in/data.h5"
  begin "--resume from a checkpoint that does not exist"
  expect fail "nothing.h5" "$hyla" train "$in/tiny.toml" --resume=nothing.h5
  begin "--resume with an empty run directory"
  expect any "" "$hyla" train "$in/tiny.toml" --quiet --resume
  begin "eval of a checkpoint whose dataset is gone"
  cp "$in/data.h5" gone.h5
  "$hyla" train "$in/tiny.toml" --quiet --set "data.dataset=\"$PWD/gone.h5\"" && rm gone.h5
  expect fail "gone.h5" "$hyla" eval run/ckpt-00000002.h5
  begin "info of every mixer's checkpoint"
  expect ok "" "$hyla" info "$in/zoo.h5"
  begin "generate from every mixer's checkpoint"
  expect ok "" "$hyla" generate "$in/zoo.h5" --tokens 40
}

outputs() {
  begin "data prepare with its input as the output"
  quick_too
  cp "$in/text.txt" x.txt
  expect fail "x.txt" "$hyla" data prepare x.txt x.txt --force
  begin "data prepare with the output another name of the input (./)"
  cp "$in/text.txt" x.txt
  expect fail "x.txt" "$hyla" data prepare x.txt ./x.txt
  begin "data prepare with the output a symlink to the input"
  cp "$in/text.txt" x.txt && ln -s x.txt y.h5
  expect fail "y.h5" "$hyla" data prepare x.txt y.h5 --force
  begin "data prepare with the output a hard link to the input"
  cp "$in/text.txt" x.txt && ln x.txt y.h5
  expect fail "y.h5" "$hyla" data prepare x.txt y.h5 --force
  begin "data prepare over an existing output without --force"
  cp "$in/data.h5" old.h5
  expect fail "old.h5" "$hyla" data prepare "$in/text.txt" old.h5
  begin "data prepare over an existing output with --force"
  cp "$in/data.h5" old.h5
  may_change old.h5
  expect ok "" "$hyla" data prepare "$in/text.txt" old.h5 --force
  begin "data prepare over a checkpoint without --force"
  cp "$in/tiny.h5" ckpt.h5
  expect fail "ckpt.h5" "$hyla" data prepare "$in/text.txt" ckpt.h5
  begin "data prepare into a directory"
  mkdir odir
  expect fail "odir" "$hyla" data prepare "$in/text.txt" odir --force
  begin "data prepare into a folder that does not exist"
  expect fail "nowhere/out.h5" "$hyla" data prepare "$in/text.txt" nowhere/out.h5
  begin "data prepare of an empty text"
  : >empty.txt
  expect fail "empty.txt" "$hyla" data prepare empty.txt out.h5
  begin "data prepare of a 1-byte text"
  printf a >one.txt
  expect any "" "$hyla" data prepare one.txt out.h5
  begin "data prepare of a missing text"
  expect fail "nothing.txt" "$hyla" data prepare nothing.txt out.h5
  begin "data prepare of a directory"
  mkdir tdir
  expect fail "tdir" "$hyla" data prepare tdir out.h5
  begin "data prepare of binary bytes (every byte value)"
  # shellcheck disable=SC2059 # the format is the byte's escape
  for i in $(seq 0 255); do printf "\\$(printf %03o "$i")"; done >bytes.txt
  cat bytes.txt bytes.txt bytes.txt bytes.txt >bin.txt
  expect ok "" "$hyla" data prepare bin.txt out.h5
  begin "train with run.out the folder of its recipe, named recipe.toml"
  cp "$in/tiny.toml" recipe.toml && echo "# the author's notes" >>recipe.toml
  expect fail "recipe.toml" "$hyla" train recipe.toml --quiet --set 'run.out="."'
  begin "train with run.out an existing file"
  echo keep >afile
  expect fail "afile" "$hyla" train "$in/tiny.toml" --set 'run.out="afile"'
  begin "train with run.out below a file"
  echo keep >afile
  expect fail "afile" "$hyla" train "$in/tiny.toml" --set 'run.out="afile/run"'
  begin "train with run.out the dataset file"
  cp "$in/data.h5" d.h5
  expect fail "d.h5" "$hyla" train "$in/tiny.toml" --set 'run.out="d.h5"' --set "data.dataset=\"$PWD/d.h5\""
}

run_dirs() {
  begin "a fresh run in a directory holding another run's checkpoints"
  quick_too
  "$hyla" train "$in/zoo.toml" --quiet
  expect fail "checkpoints" "$hyla" train "$in/tiny.toml" --quiet
  begin "--resume of another model's run directory"
  "$hyla" train "$in/zoo.toml" --quiet
  expect fail "run" "$hyla" train "$in/tiny.toml" --quiet --resume
  begin "--restart in a directory holding another run's checkpoints: they move aside"
  "$hyla" train "$in/zoo.toml" --quiet
  moved_ok
  may_change 'run/*'
  expect ok "" "$hyla" train "$in/tiny.toml" --quiet --restart
  check lost "the earlier checkpoint is not in run/previous-*" \
    compgen -G 'run/previous-*/ckpt-00000002.h5' >/dev/null
  begin "a run that keeps 1 checkpoint, resumed: it prunes only its own"
  "$hyla" train "$in/tiny.toml" --quiet --set train.keep_checkpoints=1 --set train.checkpoint_every=1
  may_change 'run/*'
  expect ok "" "$hyla" train "$in/tiny.toml" --quiet --resume --set train.steps=4 \
    --set train.keep_checkpoints=1 --set train.checkpoint_every=1
  check wrong "no checkpoint of step 4" test -f run/ckpt-00000004.h5
  begin "a run whose directory is a symlink"
  mkdir real && ln -s real run
  expect ok "" "$hyla" train "$in/tiny.toml" --quiet
  begin "a second run while one runs in the directory"
  quick_too
  bg_start "step 1/" "$hyla" train "$in/tiny.toml" --set train.steps=100000
  may_change 'run/*' # the first run's
  expect fail "in use" "$hyla" train "$in/tiny.toml" --quiet --resume
  begin "a second fresh run while one runs in the directory"
  quick_too
  cd "$bg_dir" || return
  may_change 'run/*'
  expect fail "in use|checkpoints" "$hyla" train "$in/tiny.toml" --quiet
  begin "the first run, stopped by SIGTERM: it saves a checkpoint that loads"
  quick_too
  cd "$bg_dir" || return
  bg_stop TERM
  check wrong "no checkpoint after SIGTERM" compgen -G 'run/ckpt-*.h5' >/dev/null &&
    expect ok "" "$hyla" info "$(compgen -G 'run/ckpt-*.h5' | tail -n 1)"
}

# Names an attacker with write access to a run directory could plant for hyla to follow.
planted() {
  local name
  for name in ckpt-00000002.h5.tmp recipe.toml.tmp metrics.jsonl.tmp .lock train.log \
    metrics.jsonl; do
    begin "a symlink planted at run/$name"
    mkdir run && echo "keep me" >victim && ln -s "$PWD/victim" "run/$name"
    may_change 'run/*'
    expect any "" "$hyla" train "$in/tiny.toml" --quiet
  done
  begin "a symlink planted at the next checkpoint's name, on --resume"
  "$hyla" train "$in/tiny.toml" --quiet && echo "keep me" >victim
  ln -s "$PWD/victim" run/ckpt-00000004.h5
  may_change 'run/*'
  expect any "" "$hyla" train "$in/tiny.toml" --quiet --resume --set train.steps=4
  begin "a symlink planted at data prepare's temporary name"
  echo "keep me" >victim && ln -s "$PWD/victim" out.h5.tmp
  expect ok "" "$hyla" data prepare "$in/text.txt" out.h5
  begin "data prepare --force over a symlink: the link is replaced, not its target"
  echo "keep me" >victim && ln -s "$PWD/victim" out.h5
  may_change out.h5
  expect any "" "$hyla" data prepare "$in/text.txt" out.h5 --force
}

permissions() {
  if ! can_drop_root; then
    begin "permissions"
    skip "running as root without setpriv"
    return
  fi
  begin "an unreadable recipe"
  cp "$in/tiny.toml" r.toml && chmod 000 r.toml
  expect fail "r.toml" "${as_nobody[@]}" "$hyla" train r.toml --check
  begin "an unreadable dataset"
  cp "$in/data.h5" d.h5 && chmod 000 d.h5 && chmod 777 .
  expect fail "d.h5" "${as_nobody[@]}" "$hyla" train "$in/tiny.toml" --set "data.dataset=\"$PWD/d.h5\""
  begin "an unreadable checkpoint"
  cp "$in/tiny.h5" c.h5 && chmod 000 c.h5
  expect fail "c.h5" "${as_nobody[@]}" "$hyla" eval c.h5
  begin "a run directory in a read-only folder"
  mkdir ro && chmod 555 ro
  expect fail "ro" "${as_nobody[@]}" "$hyla" train "$in/tiny.toml" --set 'run.out="ro/run"'
  begin "a read-only run directory, resumed"
  "$hyla" train "$in/tiny.toml" --quiet && chmod -R a+rX run && chmod 555 run
  expect fail "run" "${as_nobody[@]}" "$hyla" train "$in/tiny.toml" --quiet --resume --set train.steps=4
  begin "data prepare into a read-only folder"
  mkdir ro && chmod 555 ro
  expect fail "ro" "${as_nobody[@]}" "$hyla" data prepare "$in/text.txt" ro/out.h5
}

signals() {
  local sig
  for sig in INT TERM; do
    begin "SIG$sig mid-training: a checkpoint that loads, and --resume goes on"
    quick_too
    may_change 'run/*'
    stop $sig "step 3/" "$hyla" train "$in/tiny.toml" --set train.steps=100000
    check wrong "no checkpoint after SIG$sig" compgen -G 'run/ckpt-*.h5' >/dev/null &&
      expect ok "" "$hyla" train "$in/tiny.toml" --quiet --resume --set train.stop_after=1000
    $quick && return
    begin "SIG$sig during an evaluation inside training"
    stop $sig "step 1/" "$hyla" train "$in/tiny.toml" --set train.eval_every=1 \
      --set train.eval_batches=100000
    begin "SIG$sig in a step of 100,000 micro-batches"
    stop $sig @3 "$hyla" train "$in/tiny.toml" --set train.steps=3 --set train.grad_accum=100000
    begin "SIG$sig during hyla eval"
    stop $sig @2 "$hyla" eval "$in/tiny.h5" --batches 100000
    begin "SIG$sig during hyla generate"
    stop $sig @2 "$hyla" generate "$in/tiny.h5" --tokens 1000000
    begin "SIG$sig during data prepare: no output but a whole one"
    yes "a line of text to tokenize, again and again" | head -c 200000000 >big.txt
    stop $sig @1 "$hyla" data prepare big.txt big.h5
    check lost "a temporary file is left: $(ls)" test -z "$(compgen -G '*tmp*')"
    [ -f big.h5 ] && expect ok "" "$hyla" train "$in/tiny.toml" --quiet --set "data.dataset=\"$PWD/big.h5\""
    begin "SIG$sig during a sweep"
    printf '[sweep]\n"optim.lr" = [1e-3, 2e-3]\n' | cat "$in/tiny.toml" - >sweep.toml
    stop $sig "step 2/" "$hyla" sweep sweep.toml --verbose --set train.steps=100000
  done
}

group options && cli_options
group --set && set_syntax
group recipes && recipe_files
group sweeps && sweeps
group datasets && datasets
group ckpts && checkpoints
group outputs && outputs
group run-dirs && run_dirs
group planted && planted
group perms && permissions
group signals && signals
