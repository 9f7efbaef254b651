#!/usr/bin/env bash
# What a command line or the environment asks for is checked as a recipe's sizes are: hyla eval's
# --seq-len and --batches against the recipe's checks and this process's memory, hyla generate's
# --tokens against the memory decoding keeps, HYLA_THREADS and OMP_NUM_THREADS against the thread
# limit, a recipe for the GPU against the GPU kernels' limits: each refused with a message naming
# the option, variable or key (exit 2 for an option, 1 otherwise), never an abort or an overflow.
# In-range values still work.
#   limits.sh HYLA_BINARY
set -uo pipefail
source "$(dirname "$0")/common.sh"
unset OMP_NUM_THREADS

# Tiny models trained one step: a GLA/attention hybrid on text, a naive sigmoid model (its
# decoding runs a forward pass over the whole prefix), an MQAR model.
tiny_dataset
recipe() { # NAME LAYERS [DATASET [extra lines]]
  cat >"$work/$1.toml" <<TOML
[run]
out = "$work/$1"
[model]
d_model = 16
n_heads = 2
layers = $2
[train]
batch = 2
seq_len = 16
steps = 1
eval_every = 0
eval_batches = 1
[data]
dataset = "${3:-$work/data.h5}"
${4:-}
TOML
}
recipe hybrid '["gla", "attn"]'
recipe sigmoid '["sigmoid"]' "" $'[layer.sigmoid]\nnaive = true'
recipe mqar '["attn"]' mqar $'[data.mqar]\npairs = 2\ntrain_examples = 64\nval_examples = 8'
for m in hybrid sigmoid mqar; do
  "$hyla" train "$work/$m.toml" --quiet || { echo "FAIL: training $m"; exit 1; }
done
hybrid=$work/hybrid/ckpt-00000001.h5 sigmoid=$work/sigmoid/ckpt-00000001.h5
mqar=$work/mqar/ckpt-00000001.h5

e="hyla eval: "
expect 2 "$e--seq-len: a batch's forward pass takes about" eval "$hybrid" --seq-len 1000000000
expect 2 "more than the" eval "$hybrid" --seq-len 1000000000
expect 2 "$e--seq-len and --batches: a batch's forward pass" eval "$hybrid" --seq-len 1000000000 --batches 2
expect 2 "$e--seq-len: [data.mqar] pairs = 2 needs 4 * pairs <= [train] seq_len = 6" eval "$mqar" --seq-len 6
expect 0 "accuracy" eval "$mqar" --seq-len 8
expect 0 "loss" eval "$hybrid" --seq-len 32 --batches 1

g="hyla generate: "
expect 2 "$g--tokens 1000000 with a prompt of 1 byte: decoding 1000001 positions takes about" \
  generate "$sigmoid" --tokens 1000000
expect 2 "(the largest part: their naive forward's scores over the prefix" generate "$sigmoid" --tokens 1000000
expect 0 "hi" generate "$sigmoid" --prompt hi --tokens 20
expect 0 "hi" generate "$hybrid" --prompt hi --tokens 2000

# HYLA_THREADS and OMP_NUM_THREADS: a whole number from 0 (unset) to 4096, nothing truncated
v="the environment variable HYLA_THREADS: "
for bad in 100000 4294967297 18446744073709551617 -1 abc " 4" 2.5; do
  HYLA_THREADS=$bad expect 1 "hyla info: $v\"$bad\" is not a whole number from 0 to 4096" info
done
HYLA_THREADS=100000 expect 1 "hyla train: $v\"100000\"" train "$work/hybrid.toml" --restart --quiet
HYLA_THREADS=100000 expect 1 "hyla eval: $v\"100000\"" eval "$hybrid"
HYLA_THREADS=100000 expect 1 "hyla generate: $v\"100000\"" generate "$hybrid"
HYLA_THREADS=100000 expect 1 "hyla demo: $v\"100000\"" demo --steps 1
HYLA_THREADS= OMP_NUM_THREADS=99999 expect 1 \
  "hyla info: the environment variable OMP_NUM_THREADS: \"99999\" is not a whole number" info
HYLA_THREADS=0 OMP_NUM_THREADS=3,2 expect 0 "; 3 threads" info
HYLA_THREADS=4096 expect 0 "; 4096 threads" info
HYLA_THREADS= OMP_NUM_THREADS= expect 0 " threads" info
expect 1 "hyla train: --set train.threads=4294967297: [train] threads: expected an integer in [0, 4096], got 4294967297" \
  train "$work/hybrid.toml" --check --set train.threads=4294967297

# a recipe for the GPU is checked against its kernels on any build, naming the key's line
cat >"$work/gpu.toml" <<TOML
[model]
d_model = 512
n_heads = 1
[train]
device = "cuda"
TOML
expect 1 "hyla train: $work/gpu.toml:5: [model] the head size d_model / n_heads = 512 / 1 = 512: the GPU's attention kernels (the 'attn' layers) take head sizes up to 256" \
  train "$work/gpu.toml" --check
expect 1 "hyla train: --set layer.gla.chunk=30000: [layer.gla] chunk = 30000 with [train] seq_len = 30000" \
  train "$work/gpu.toml" --check --set model.n_heads=2 --set 'model.layers="gla"' \
  --set train.seq_len=30000 --set layer.gla.chunk=30000
expect 0 "a valid recipe" train "$work/gpu.toml" --check --set model.n_heads=2

# a GLA, lightning or linear chunk longer than the sequence is the whole sequence (it was a scratch
# of chunk^2 values: out of memory)
expect 0 "done: step 1" train "$work/hybrid.toml" --restart --set layer.gla.chunk=100000000 \
  --set 'model.layers="gla,lightning,linear"' --set layer.lightning.chunk=1000000 \
  --set layer.linear.chunk=1000000

# the commands' own arguments
expect 2 "hyla info: unknown option '--foo'" info --foo
expect 2 "hyla info: more than one checkpoint ('$hybrid')" info "$hybrid" "$hybrid"
expect 2 "hyla demo: unexpected argument 'extra'" demo extra
expect 2 "hyla eval: --batches: \"0\" is not a whole number >= 1" eval "$hybrid" --batches=0
expect 2 "hyla train: --set needs a value" train "$work/hybrid.toml" --set
# what this build has: the CPU backend, and CUDA either with its GPU or said to be absent
expect 0 "CPU   OpenBLAS, f32 and f64; 1 thread" info
expect 0 "CUDA  " info
expect 0 "dist  " info

[ $status = 0 ] && echo "limits: every size and count checked"
exit $status
