#!/usr/bin/env bash
# Gather here what the GPU machine lacks for scripts/gpu-check.sh: Criterion (the test framework),
# its headers and shared libraries with their own dependencies, and toml++ (the recipe parser,
# headers only), into .gpu-deps/ (ignored by git), to be carried along with the working tree;
# and, for the reference timings of bench/reference/ and the export check (scripts/gpu-check.sh
# --export), flash-linear-attention (fla-core: its kernels; flash-linear-attention: its layers and
# Hugging Face model classes, which hyla export writes for; einops; pure Python, from PyPI, of one
# version: the one docs/export.md was written against) unpacked into .gpu-deps/python. Run on a
# Debian/Ubuntu machine that has them installed (scripts/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
out=.gpu-deps
rm -rf "$out"
mkdir -p "$out/include" "$out/lib/pkgconfig"
libdir=$(dirname "$(find /usr/lib /usr/lib64 -name 'libcriterion.so.*' -print -quit)")
cp -r /usr/include/criterion "$out/include/"
cp -r /usr/include/toml++ "$out/include/" # CMakeLists.txt looks for it here too
# Criterion and the libraries it pulls in that a CUDA image usually lacks.
for lib in libcriterion libgit2 libnanomsg libmbedtls libmbedx509 libmbedcrypto \
  libhttp_parser libssh2; do
  cp -a "$libdir/$lib".so* "$out/lib/"
done
for pc in criterion; do
  sed -e 's#^prefix=.*#prefix=${pcfiledir}/../..#' -e 's#^libdir=.*#libdir=${prefix}/lib#' \
    -e 's#^includedir=.*#includedir=${prefix}/include#' -e '/^Requires.private/d' -e '/^Libs.private/d' "$libdir/pkgconfig/$pc.pc" \
    >"$out/lib/pkgconfig/$pc.pc"
done
# The reference kernels and model classes: optional, so a machine without PyPI still gets the rest.
fla=0.6.0
if python3 -m pip download --no-deps --quiet -d "$out/wheels" "fla-core==$fla" \
  "flash-linear-attention==$fla" einops; then
  mkdir -p "$out/python"
  for wheel in "$out"/wheels/*.whl; do python3 -m zipfile -e "$wheel" "$out/python"; done
  rm -rf "$out/wheels"
else
  echo "gpu-deps: could not download fla-core, flash-linear-attention and einops; the GLA and" \
    "lightning references and the export check will be skipped"
fi
du -sh "$out"
