#!/usr/bin/env bash
# Subword data end to end, through the command line: a byte-level BPE trained on part of the
# shipped corpus with scripts/train-bpe.py; `data prepare --tokenizer` and `data decode` give the
# text back byte for byte (the corpus, and invalid UTF-8, NUL, emoji, CRLF, a special token); a
# byte dataset decodes as bytes; documents (a folder, a separator), bytes and subwords, each
# tokenized on its own and counted; a recipe whose vocab does not fit the dataset is refused with
# both sizes; recipes/quickstart-bpe.toml, made tiny, trains, and `generate` and `eval` work from
# its checkpoint alone (the vocabulary kept in it); a missing interpreter or package is a clear
# error. Without python3 and its tokenizers package (scripts/setup.sh installs them) the
# tokenizer checks are skipped (exit 77).
#   subword.sh HYLA_BINARY
set -euo pipefail
hyla=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
src=$(cd "$(dirname "$0")/../.." && pwd)
source "$(dirname "$0")/../scratch.sh" # work, fail, expect

# the corpus's first 400 kB: the text every check below tokenizes
gzip -dc "$src/data/corpus/shakespeare.txt.gz" | head -c 400000 >corpus.txt || true
[ "$(wc -c <corpus.txt)" = 400000 ] || fail "cannot read the shipped corpus"

# A byte dataset decodes to its text: each token its byte.
expect 0 "vocabulary 256 (bytes)" "$hyla" data prepare corpus.txt bytes.h5
"$hyla" data decode bytes.h5 | cmp -s - corpus.txt || fail "a byte dataset does not decode to its text"

# Documents, byte by byte: a folder's files in name order, a separator with C escapes, which is
# dropped; the counts are printed, and a bad escape is a usage error.
mkdir folder
printf 'second document\n' >folder/b.txt
printf 'first document\n' >folder/a.txt
printf 'the third and last\n' >folder/c.txt
expect 0 "documents: 2 in /train, 1 in /val" "$hyla" data prepare folder folder.h5 --val-fraction 0.3
"$hyla" data decode folder.h5 | cmp -s - <(cat folder/a.txt folder/b.txt folder/c.txt) ||
  fail "a folder's documents do not decode to its files in name order"
printf 'one\n\n\ntwo\n\n\nthree, the longest\n' >sep.txt
expect 0 "documents: 2 in /train, 1 in /val" "$hyla" data prepare sep.txt sep.h5 --doc-separator '\n\n\n' \
  --val-fraction 0.5
[ "$("$hyla" data decode sep.h5)" = "onetwothree, the longest" ] || fail "the separator is not dropped"
expect 0 "documents: not recorded" "$hyla" data prepare sep.txt one.h5
expect 2 "--doc-separator '\q': unknown escape \q" "$hyla" data prepare sep.txt x.h5 --doc-separator '\q'

# Without Python, or without the package, --tokenizer says what is missing.
echo '{}' >fake.json
HYLA_PYTHON=/nonexistent/python3 expect 1 "cannot run '/nonexistent/python3'" \
  "$hyla" data prepare corpus.txt x.h5 --tokenizer fake.json
[ -e x.h5 ] && fail "a failed prepare wrote its output"
# SIGTERM while the script runs: hyla ends it, writes nothing and exits 143. The stand-in for
# Python records its pid, takes the text and sleeps.
printf '#!/bin/sh\necho $$ >"%s/script.pid"\ncat >/dev/null\nexec sleep 60\n' "$work" >slow-python
chmod +x slow-python
HYLA_PYTHON=$work/slow-python "$hyla" data prepare corpus.txt stopped.h5 --tokenizer fake.json \
  >stop.txt 2>&1 &
pid=$!
for ((i = 0; i < 1000; i++)); do [ -s script.pid ] && break; sleep 0.01; done
[ -s script.pid ] || fail "the stand-in tokenizer script did not start"
kill -TERM "$pid"
for ((i = 0; i < 500; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.01; done
kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid"; fail "data prepare did not stop within 5 s"; }
rc=0
wait "$pid" || rc=$?
[ "$rc" = 143 ] || fail "data prepare stopped by SIGTERM exited $rc: $(cat stop.txt)"
grep -qF "stopped by SIGTERM while tokenizing: stopped.h5 not written" stop.txt ||
  fail "data prepare said '$(cat stop.txt)'"
[ -e stopped.h5 ] && fail "a stopped prepare wrote its output"
kill -0 "$(cat script.pid)" 2>/dev/null && fail "the tokenizer script outlived hyla"

if ! command -v python3 >/dev/null; then
  echo "subword: no python3: the tokenizer checks are skipped"
  exit 77
fi
printf '#!/bin/sh\nexec python3 -S "$@"\n' >bare-python # no site-packages: no tokenizers
chmod +x bare-python
if ! ./bare-python -c 'import tokenizers' 2>/dev/null; then
  HYLA_PYTHON=./bare-python expect 1 "the Python package 'tokenizers' is missing" \
    "$hyla" data prepare corpus.txt x.h5 --tokenizer fake.json
fi
if ! python3 -c 'import tokenizers' 2>/dev/null; then
  echo "subword: python3 has no tokenizers package (scripts/setup.sh installs it): skipped"
  exit 77
fi
expect 1 "not a tokenizer the tokenizers package reads" \
  "$hyla" data prepare corpus.txt x.h5 --tokenizer fake.json
expect 1 "--tokenizer none.json: cannot read it" \
  "$hyla" data prepare corpus.txt x.h5 --tokenizer none.json

# A byte-level BPE of 512 tokens, one of them special; the same text and options, the same file.
train_bpe() {
  python3 "$src/scripts/train-bpe.py" --vocab 512 --max-bytes 200000 --special '<|endoftext|>' \
    corpus.txt "$1" >/dev/null
}
train_bpe bpe.json
train_bpe again.json
cmp -s bpe.json again.json || fail "train-bpe.py gave two tokenizers for the same text"

# A tokenizer that changes the text is refused, naming the first byte that differs.
python3 - <<'PY'
import json
spec = json.load(open("bpe.json"))
spec["normalizer"] = {"type": "Lowercase"}
json.dump(spec, open("lower.json", "w"))
spec["normalizer"] = None
spec["pre_tokenizer"]["add_prefix_space"] = True
json.dump(spec, open("prefix.json", "w"))
PY
expect 1 "lower.json: the tokens do not decode to the text: token 0 (id" \
  "$hyla" data prepare corpus.txt x.h5 --tokenizer lower.json
grep -qF "differs from it at byte 0;" out.txt || fail "the first differing byte is not named: $(cat out.txt)"
expect 1 "prefix.json: its ByteLevel pre-tokenizer adds a space before the text" \
  "$hyla" data prepare corpus.txt x.h5 --tokenizer prefix.json
[ -e x.h5 ] && fail "a refused tokenizer wrote the dataset"

# Encode, then decode through the vocabulary stored in the dataset: the bytes come back.
expect 0 "vocabulary 512 (byte-level-bpe)" \
  "$hyla" data prepare corpus.txt sub.h5 --tokenizer bpe.json --val-fraction 0.05
"$hyla" data decode sub.h5 | cmp -s - corpus.txt || fail "the corpus does not come back"
printf 'ROMEO. \x00NUL\xff\xfe bad \xe2\x82 cut \xf0\x9f\x98\x80 emoji\r\n<|endoftext|>  the end\n' \
  >odd.txt
expect 0 "wrote odd.h5" "$hyla" data prepare odd.txt odd.h5 --tokenizer bpe.json --val-fraction 0.5
"$hyla" data decode odd.h5 | cmp -s - odd.txt || fail "odd bytes do not come back"
expect 0 "" "$hyla" data decode odd.h5 --split val
cmp -s out.txt <(tail -c "$(wc -c <out.txt)" odd.txt) || fail "/val is not the text's end"

# Documents with subwords: each tokenized on its own, so the dataset's ids are the tokenizer's ids
# of each document alone and its starts are where each begins (h5dump writes the datasets raw).
expect 0 "documents: " "$hyla" data prepare corpus.txt docs.h5 --tokenizer bpe.json \
  --doc-separator '\n\n' --val-fraction 0.1
for set in train val train_docs val_docs; do h5dump -d "/$set" -b LE -o "$set.bin" docs.h5 >/dev/null; done
python3 - <<'PY' || fail "the documents' ids or starts are not the tokenizer's of each alone"
import struct
from tokenizers import Tokenizer
tok = Tokenizer.from_file("bpe.json")
docs = [d for d in open("corpus.txt", "rb").read().split(b"\n\n") if d]
ids = [tok.encode(d.decode("utf-8"), add_special_tokens=False).ids for d in docs]
def read(name, fmt, size):
    b = open(name + ".bin", "rb").read()
    return list(struct.unpack("<%d%s" % (len(b) // size, fmt), b))
def starts(parts):
    at, out = 0, []
    for p in parts:
        out.append(at)
        at += len(p)
    return out
k = len(read("train_docs", "q", 8))
assert read("train", "H", 2) == sum(ids[:k], []), "/train"
assert read("val", "H", 2) == sum(ids[k:], []), "/val"
assert read("train_docs", "q", 8) == starts(ids[:k]), "/train_docs"
assert read("val_docs", "q", 8) == starts(ids[k:]), "/val_docs"
PY
expect 0 "documents: 2 in /train, 1 in /val" "$hyla" data prepare folder sub-folder.h5 \
  --tokenizer bpe.json --val-fraction 0.3
"$hyla" data decode sub-folder.h5 | cmp -s - <(cat folder/a.txt folder/b.txt folder/c.txt) ||
  fail "a folder's subword documents do not decode to its files"

# [model] vocab follows the dataset; set to another size, the recipe is refused.
cat >tiny.toml <<EOF
[model]
vocab = 256
[data]
dataset = "$work/sub.h5"
EOF
expect 1 "tiny.toml:2: [model] vocab = 256, but the dataset $work/sub.h5 has a vocabulary of 512" \
  "$hyla" train tiny.toml --check

# The subword recipe, made tiny: it trains, then generate and eval read the checkpoint alone.
sets=(--set "data.dataset=\"$work/sub.h5\"" --set "run.out=\"$work/run\"" --set model.d_model=32
  --set model.n_heads=2 --set train.batch=4 --set train.seq_len=32 --set train.steps=20
  --set train.eval_every=0 --set train.eval_batches=2 --set train.log_every=10 --set train.threads=1
  --set optim.warmup=2)
expect 0 "bits per byte" "$hyla" train "$src/recipes/quickstart-bpe.toml" "${sets[@]}"
ckpt=run/ckpt-00000020.h5
[ -f "$ckpt" ] || fail "no checkpoint after training: $(ls run)"
"$hyla" info "$ckpt" >info.txt
grep -q "^vocabulary 512 tokens" info.txt || fail "info does not show the kept vocabulary"
grep -q "^vocab = 512" info.txt || fail "the resolved recipe lacks vocab = 512"
expect 0 "bits/byte" "$hyla" eval "$ckpt" --batches 2
grep -q "bits/tok" out.txt || fail "eval prints no bits per token: $(cat out.txt)"
mv sub.h5 away.h5 # generate needs the checkpoint only
"$hyla" generate "$ckpt" --prompt "ROMEO. " --tokens 20 --seed 3 >gen.txt 2>&1 ||
  fail "generate failed: $(cat gen.txt)"
head -c 7 gen.txt | grep -qx "ROMEO. " || fail "generate did not print the prompt: $(cat gen.txt)"
[ "$(wc -c <gen.txt)" -ge 28 ] || fail "20 tokens of a byte or more expected: $(cat gen.txt)"
expect 1 "dataset '$work/sub.h5' is neither a file" "$hyla" eval "$ckpt" # its dataset is gone
mv away.h5 sub.h5
# a checkpoint evaluated on a dataset of another tokenizer is refused
"$hyla" data prepare corpus.txt other.h5 --tokenizer again.json --val-fraction 0.05 >/dev/null
cp other.h5 sub.h5
"$hyla" eval "$ckpt" --batches 1 >/dev/null # the same vocabulary: fine
python3 "$src/scripts/train-bpe.py" --vocab 512 --max-bytes 100000 corpus.txt third.json >/dev/null
"$hyla" data prepare corpus.txt sub.h5 --tokenizer third.json --val-fraction 0.05 --force >/dev/null
expect 1 "was trained with a vocabulary of 512 tokens that the dataset $work/sub.h5 does not have" \
  "$hyla" eval "$ckpt"
echo "subword: all checks passed"
