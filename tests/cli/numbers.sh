#!/usr/bin/env bash
# Every number the commands take on the command line, given out of range, negative, not a number,
# empty or past 64 bits: exit 2 and a message that names the option, quotes the value and states
# the range; never a crash, a clamp or a run with another value. In-range values still work.
#   numbers.sh HYLA_BINARY
set -uo pipefail
source "$(dirname "$0")/common.sh"

# A dataset, a tiny model trained one step on it, and its checkpoint.
tiny_dataset
cat >"$work/r.toml" <<TOML
[run]
out = "$work/run"
[model]
d_model = 16
n_heads = 2
layers = ["gla", "attn"]
[train]
batch = 2
seq_len = 16
steps = 1
eval_every = 0
eval_batches = 1
[data]
dataset = "$work/data.h5"
TOML
"$hyla" train "$work/r.toml" --quiet || { echo "FAIL: training the test model"; exit 1; }
ckpt=$work/run/ckpt-00000001.h5

big=99999999999999999999 # past 64 bits: strtoll's ERANGE
max=9223372036854775807

g="hyla generate: "
expect 2 "$g--tokens: \"-1\" is not a whole number from 1 to 1048575" generate "$ckpt" --tokens -1
expect 2 "$g--tokens: \"0\" is not a whole number from 1 to 1048575" generate "$ckpt" --tokens 0
expect 2 "$g--tokens: \"\" is not a whole number" generate "$ckpt" --tokens ""
expect 2 "$g--tokens: \"many\" is not a whole number" generate "$ckpt" --tokens many
expect 2 "$g--tokens: \"5x\" is not a whole number" generate "$ckpt" --tokens 5x
expect 2 "$g--tokens: \" 5\" is not a whole number" generate "$ckpt" --tokens " 5"
expect 2 "$g--tokens: \"2.5\" is not a whole number" generate "$ckpt" --tokens 2.5
expect 2 "$g--tokens: \"$max\" is not a whole number from 1 to 1048575" generate "$ckpt" --tokens $max
expect 2 "$g--tokens: \"$big\" is not a whole number from 1 to 1048575" generate "$ckpt" --tokens $big
expect 2 "$g--tokens 1048575 with a prompt of 2 bytes: the prompt and the tokens together may be at most 1048576 positions" \
  generate "$ckpt" --tokens 1048575 --prompt ab
expect 2 "$g--tokens needs a value" generate "$ckpt" --tokens
expect 2 "$g--temperature: \"-0.5\" is not a finite number >= 0" generate "$ckpt" --temperature -0.5
expect 2 "$g--temperature: \"nan\" is not a finite number >= 0" generate "$ckpt" --temperature nan
expect 2 "$g--temperature: \"inf\" is not a finite number >= 0" generate "$ckpt" --temperature inf
expect 2 "$g--temperature: \"1e999\" is not a finite number >= 0" generate "$ckpt" --temperature 1e999
expect 2 "$g--temperature: \"\" is not a finite number >= 0" generate "$ckpt" --temperature ""
expect 2 "$g--top-k: \"-1\" is not a whole number >= 0" generate "$ckpt" --top-k -1
expect 2 "$g--top-k: \"$big\" is not a whole number from 0 to $max" generate "$ckpt" --top-k $big
expect 2 "$g--seed: \"-1\" is not a whole number >= 0" generate "$ckpt" --seed -1
expect 2 "$g--seed: \"18446744073709551616\" is not a whole number from 0 to $max" \
  generate "$ckpt" --seed 18446744073709551616
expect 2 "${g}more than one checkpoint" generate "$ckpt" "$ckpt"
expect 2 "${g}needs a checkpoint" generate --tokens 5
# a top-k past the vocabulary (once truncated to int) samples among all of it
expect 0 "hi" generate "$ckpt" --prompt hi --tokens 3 --top-k 4294967296
expect 0 "hi" generate "$ckpt" --prompt hi --tokens 3 --temperature 0 --seed $max

e="hyla eval: "
expect 2 "$e--batches: \"0\" is not a whole number >= 1" eval "$ckpt" --batches 0
expect 2 "$e--batches: \"-3\" is not a whole number >= 1" eval "$ckpt" --batches -3
expect 2 "$e--batches: \"$big\" is not a whole number from 1 to $max" eval "$ckpt" --batches $big
expect 2 "$e--seq-len: \"\" is not a whole number >= 1" eval "$ckpt" --seq-len ""
expect 2 "$e--seq-len: \"16k\" is not a whole number >= 1" eval "$ckpt" --seq-len 16k
expect 2 "$e--seq-len: 1 x 2 x ($max + 1) tokens (batches x batch x (seq_len + 1)) overflow a 64-bit count" \
  eval "$ckpt" --seq-len $max
expect 2 "$e--batches: $max x 2 x (16 + 1) tokens" eval "$ckpt" --batches $max
expect 2 "$e--seq-len and --batches: 4 x 2 x (2305843009213693951 + 1) tokens" \
  eval "$ckpt" --seq-len 2305843009213693951 --batches 4
expect 1 "fewer than seq_len + 1 = 100001" eval "$ckpt" --seq-len 100000
expect 2 "${e}more than one checkpoint" eval "$ckpt" "$ckpt"
expect 0 "loss" eval "$ckpt" --batches 1 --seq-len 8

d="hyla data: --val-fraction: "
for bad in 0 0.6 -0.1 nan inf "" 10% 1e999; do
  expect 2 "$d\"$bad\" is not a number > 0 and <= 0.5" data prepare "$work/text.txt" "$work/v.h5" --val-fraction "$bad"
done
expect 0 "wrote $work/v.h5" data prepare "$work/text.txt" "$work/v.h5" --val-fraction 0.5

m="hyla demo: "
expect 2 "$m--steps: \"0\" is not a whole number >= 1" demo --steps 0
expect 2 "$m--steps: \"-1\" is not a whole number >= 1" demo --steps -1
expect 2 "$m--steps: \"$big\" is not a whole number from 1 to $max" demo --steps $big
expect 2 "$m--threads: \"-1\" is not a whole number from 0 to 4096" demo --threads -1
expect 2 "$m--threads: \"100000\" is not a whole number from 0 to 4096" demo --threads 100000
expect 2 "$m--threads: \"4294967297\" is not a whole number from 0 to 4096" demo --threads 4294967297
expect 2 "$m--threads: \"two\" is not a whole number from 0 to 4096" demo --threads two
expect 1 "demo: loss" demo --steps 1 --threads 1 # one step: the loss is still high

[ $status = 0 ] && echo "numbers: every option checked"
exit $status
