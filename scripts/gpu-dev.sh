#!/usr/bin/env bash
# A development round on a GPU machine in one command: build with CUDA, run the GPU suites named
# (all by default) and time the 134M LMs; logs under $OUT (or build-gpu/logs). For quick rounds
# while a change is under way; scripts/gpu-check.sh is the whole check.
#   scripts/gpu-dev.sh [ctest regex] [bench_cuda_lm arguments...]
set -uo pipefail
cd "$(dirname "$0")/.."
suites=${1:-^test_cuda}
shift || true
logs=${OUT:-build-gpu/logs}
mkdir -p "$logs"
if [ -d .gpu-deps ]; then
  export PKG_CONFIG_PATH="$PWD/.gpu-deps/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  export LD_LIBRARY_PATH="$PWD/.gpu-deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PYTHONPATH="$PWD/.gpu-deps/python${PYTHONPATH:+:$PYTHONPATH}"
fi
export HYLA_REQUIRE_GPU=1 NCCL_NVLS_ENABLE=0
t0=$(date +%s)
cmake -S . -B build-gpu -DHYLA_CUDA=ON -DCMAKE_BUILD_TYPE=Release >"$logs/configure.log" 2>&1 &&
  cmake --build build-gpu -j"$(nproc)" >"$logs/build.log" 2>&1 ||
  { tail -40 "$logs/build.log"; exit 1; }
echo "== built in $(($(date +%s) - t0)) s"
if [ "$suites" != none ]; then
  (cd build-gpu && timeout 300 ctest -R "$suites" -E parallel --output-on-failure) \
    >"$logs/tests.log" 2>&1
  grep -E "tests passed|tests failed|Failed|\*\*\*|Timeout" "$logs/tests.log" | head -40
  grep -E "^\[----\].*(FAIL|assert|Assert)|failed:|: (forward|gradient).*error|hyla: " \
    "$logs/tests.log" | head -60
  echo "== tests done at $(($(date +%s) - t0)) s"
fi
if [ $# -gt 0 ]; then
  build-gpu/bench_cuda_lm "$@" 2>&1 | tee "$logs/bench.log"
  echo "== bench done at $(($(date +%s) - t0)) s"
fi
