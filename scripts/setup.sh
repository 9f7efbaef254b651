#!/usr/bin/env bash
# Install, idempotently, the Debian/Ubuntu packages hyla needs to build, test and run.
# Runs as root or through sudo; installs only what is missing and says what it does.
#   scripts/setup.sh [--reference]
# --reference adds PyTorch and h5py (Debian's python3-torch, python3-h5py), which only the
# reference scripts need: golden fixtures (scripts/reference/) and scripts/bench_train.sh.
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang-format
  libopenblas-dev
  libhdf5-dev zlib1g-dev
  hdf5-tools # h5repack: converts HDF5 files of the old layout (docs/data.md), and its test
  libopenmpi-dev openmpi-bin
  libcriterion-dev
  libtomlplusplus-dev # toml++, the TOML parser that reads recipes (header-only)
  gnuplot-nox
  python3 python3-pip # scripts/tokenize-text.py and train-bpe.py: subword datasets
  clang libclang-rt-dev libomp-dev # libFuzzer builds of the fuzz targets (docs/testing.md)
)
case "${1:-}" in
  --reference) packages+=(python3-torch python3-h5py) ;;
  "") ;;
  *)
    echo "usage: scripts/setup.sh [--reference]" >&2
    exit 2
    ;;
esac

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

# Python's tokenizers package, for the python3 on PATH (`hyla data prepare --tokenizer` runs
# scripts/tokenize-text.py with it; tests/data/subword.sh skips without it): Debian has no
# package of it, so pip installs it, into a Debian-managed Python too.
tokenizers() {
  python3 -c 'import tokenizers' 2>/dev/null && return 0
  echo "setup: installing Python's tokenizers package with pip for $(command -v python3)"
  local spec='tokenizers>=0.19,<1'
  python3 -m pip install -q "$spec" 2>/dev/null ||
    python3 -m pip install -q --break-system-packages "$spec"
}

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages hyla needs are installed"
  tokenizers
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "setup: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi

echo "setup: installing with apt-get: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
tokenizers
echo "setup: done"
