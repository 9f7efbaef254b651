#!/usr/bin/env bash
# Write the seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/) afresh: the shipped
# recipes, a few --set lines, a tiny dataset and checkpoint made by hyla itself (HDF5's checksummed
# layout), and known-bad inputs made from them. Reproducers of fixed findings
# (corpus/<target>/crash-*) are kept.
#   tests/fuzz/make_seeds.sh build/hyla
set -euo pipefail
hyla=$(realpath "${1:?usage: tests/fuzz/make_seeds.sh path/to/hyla}")
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# copy $1 to $3 with byte $2 changed (in metadata: it no longer matches its checksum)
damage() {
  cp "$1" "$3"
  local byte
  byte=$(od -An -tu1 -j"$2" -N1 "$1")
  printf "\\$(printf %03o $((byte ^ 0x5a)))" | dd of="$3" bs=1 seek="$2" conv=notrunc status=none
}
for t in recipe set dataset checkpoint; do
  mkdir -p "corpus/$t"
  find "corpus/$t" -type f ! -name 'crash-*' -delete
done

# recipe: every shipped recipe and sweep, and a few that each break one rule
for f in ../../recipes/*.toml ../../recipes/ablations/*.toml; do cp "$f" "corpus/recipe/$(basename "$f")"; done
cp tiny.toml corpus/recipe/tiny.toml
printf '' >corpus/recipe/empty.toml
printf '[model]\nlayers = ["gla",\n  "attn"\n' >corpus/recipe/bad-unterminated-array.toml
printf '[optim]\nlr = 1e-3\nlr = 2e-3\n' >corpus/recipe/bad-duplicate-key.toml
printf '[model]\nd_model = 64\nn_heads = 3\n' >corpus/recipe/bad-heads.toml
printf '[train]\nbatch = 9223372036854775807\n' >corpus/recipe/bad-huge-batch.toml
printf '[run]\nname = "a\\u00e9\\t;b" # comment\n[sweep]\n"optim.lr" = [1e-3, 3e-3]\n"optim.lr" = [1]\n' \
  >corpus/recipe/bad-sweep-twice.toml
printf '[sweep]\nseeds = [0, 1]\n"model.layers" = ["gla,attn x 2", "attn"]\n' >corpus/recipe/sweep-layers.toml
printf '[data]\ndataset = "x\x01"\n' >corpus/recipe/bad-control.toml
printf 'run = { name = """a\\\n  b""", seed = 0x1F }\nmodel.d_model = 1_024\nlayer.attn = { naive = true }\n' \
  >corpus/recipe/toml-forms.toml
printf "[sweep]\n'model'.layers = ['gla', [\"attn\"]]\n[sweep.optim]\nlr = [1e-3, 3E-3]\nbetas = [[0.9, 0.95], [0.8, 0.9]]\n" \
  >corpus/recipe/sweep-dotted.toml

# set: one override a line, applied to tiny.toml
printf 'optim.lr=3e-4\n' >corpus/set/lr
printf 'model.layers="gla,attn x 2"\nlayer.gla.heads=2\n' >corpus/set/layers
printf 'data.dataset="mqar"\ndata.mqar.pairs=2\ntrain.seq_len=16\n' >corpus/set/mqar
printf 'optim.betas=[0.9, 0.99]\noptim.no_decay=["norm", "bias"]\n' >corpus/set/arrays
printf "run.name='x y'\nlayer.attn.naive=true\ntrain.precision=\"f64\"\n" >corpus/set/strings
printf 'train.batch=9223372036854775807\nmodel.vocab=1152921504606846976\n' >corpus/set/bad-huge
printf 'layer.titans.expansion=1e-9\n' >corpus/set/bad-titans
printf 'optim.lr\nnope.key=1\nmodel=3\n' >corpus/set/bad-forms
printf 'run.out=/tmp/x y\noptim.schedule=wsd\nmodel.layers=gla,attn x 2\noptim.no_decay=norm, bias\n' \
  >corpus/set/bare

# dataset: hyla's own from a little text, and damaged copies
(zcat ../../data/corpus/shakespeare.txt.gz || true) | head -c 160 >"$tmp/text.txt" # zcat: SIGPIPE
"$hyla" data prepare "$tmp/text.txt" corpus/dataset/tiny.h5 >/dev/null
head -c 1200 corpus/dataset/tiny.h5 >corpus/dataset/bad-truncated.h5
damage corpus/dataset/tiny.h5 60 corpus/dataset/bad-checksum.h5 # the root group's header
cp "$tmp/text.txt" corpus/dataset/bad-text.h5
# a dataset of documents (its lines), and a copy whose second start goes back to -1 (values carry
# no checksum: hyla's own check refuses it)
"$hyla" data prepare "$tmp/text.txt" corpus/dataset/tiny-docs.h5 --doc-separator '\n' >/dev/null
at=$(h5dump -p -H -d /train_docs corpus/dataset/tiny-docs.h5 | sed -n 's/.*OFFSET \([0-9]*\).*/\1/p')
cp corpus/dataset/tiny-docs.h5 corpus/dataset/bad-docs-order.h5
printf '\377\377\377\377\377\377\377\377' |
  dd of=corpus/dataset/bad-docs-order.h5 bs=1 seek=$((at + 8)) conv=notrunc status=none

# checkpoint: two steps of tiny.toml on that dataset, and damaged copies
cp corpus/dataset/tiny.h5 "$tmp/data.h5"
(cd "$tmp" && "$hyla" train "$OLDPWD/tiny.toml" --quiet --set 'data.dataset="data.h5"' \
  --set 'run.out="run"') # relative paths: the checkpoint's recipe names no folder of this machine
cp "$tmp"/run/ckpt-*.h5 corpus/checkpoint/tiny.h5
head -c 4096 corpus/checkpoint/tiny.h5 >corpus/checkpoint/bad-truncated.h5
damage corpus/checkpoint/tiny.h5 60 corpus/checkpoint/bad-checksum.h5
cp corpus/dataset/tiny.h5 corpus/checkpoint/bad-dataset.h5
du -sh corpus/*
