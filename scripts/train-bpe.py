#!/usr/bin/env python3
"""Trains a byte-level BPE tokenizer (GPT-2's kind) on a text with Hugging Face's `tokenizers`
package and saves its tokenizer.json, for `hyla data prepare --tokenizer`. The same text and
options give the same file.
Usage: train-bpe.py [--vocab N] [--max-bytes N] [--special TEXT]... TEXT[.gz] OUT.json
  --vocab N       the vocabulary's size, the 256 bytes included (default 2048)
  --max-bytes N   train on the text's first N bytes only (default: all of it)
  --special TEXT  add a special token (repeatable), e.g. --special '<|endoftext|>'
Example: scripts/train-bpe.py data/corpus/shakespeare.txt.gz data/cache/bpe-2048.json"""
import argparse
import gzip
import os
import sys


def main():
    ap = argparse.ArgumentParser(usage=__doc__.split("Usage: ")[1].split("\n")[0])
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--max-bytes", type=int, default=0)
    ap.add_argument("--special", action="append", default=[])
    ap.add_argument("text")
    ap.add_argument("out")
    a = ap.parse_args()
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    except ImportError:
        sys.exit("train-bpe.py: the Python package 'tokenizers' is missing for %s: "
                 "scripts/setup.sh installs it (pip install tokenizers)" % sys.executable)
    if not 256 + len(a.special) <= a.vocab <= 1 << 24:
        sys.exit("train-bpe.py: --vocab %d: expected 256 + the special tokens to 2^24 (hyla's "
                 "datasets hold at most that many)" % a.vocab)
    opener = gzip.open if a.text.endswith(".gz") else open
    with opener(a.text, "rb") as f:
        data = f.read(a.max_bytes) if a.max_bytes > 0 else f.read()
    text = data.decode("utf-8", "replace")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=a.vocab, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=a.special)
    tok.train_from_iterator(text.splitlines(keepends=True), trainer)
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    tok.save(a.out)
    print("train-bpe.py: %s: %d tokens, trained on %d bytes of %s" %
          (a.out, tok.get_vocab_size(), len(data), a.text))


if __name__ == "__main__":
    main()
