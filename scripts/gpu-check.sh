#!/usr/bin/env bash
# The whole GPU check in one command, on a machine with an NVIDIA GPU: builds hyla with CUDA,
# runs every GPU test suite (tests/cuda/, where a missing GPU fails instead of skipping), runs the
# GPU benches and the references and prints a short table with hyla / reference ratios
# (scripts/gpu-ratios.py). Where Criterion or inih are not installed, carry .gpu-deps/ (made by
# scripts/gpu-deps.sh). Logs go to $OUT (or the build dir).
#   scripts/gpu-check.sh [--no-references] [build-dir]
# --no-references skips the PyTorch / fla timings (fla autotunes for minutes on first use).
set -euo pipefail
references=1
if [ "${1:-}" = --no-references ]; then
  references=0
  shift
fi
cd "$(dirname "$0")/.."
build=${1:-build-gpu}
logs=${OUT:-$build}
mkdir -p "$build" "$logs"
if [ -d .gpu-deps ]; then
  export PKG_CONFIG_PATH="$PWD/.gpu-deps/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  export LD_LIBRARY_PATH="$PWD/.gpu-deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PYTHONPATH="$PWD/.gpu-deps/python${PYTHONPATH:+:$PYTHONPATH}"
fi
export HYLA_REQUIRE_GPU=1 NCCL_NVLS_ENABLE=0
gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)
echo "== GPU: $gpu"

echo "== configure and build ($build)"
cmake -S . -B "$build" -DHYLA_CUDA=ON -DCMAKE_BUILD_TYPE=Release >"$logs/configure.log" 2>&1 ||
  { cat "$logs/configure.log"; exit 1; }
cmake --build "$build" -j"$(nproc)" >"$logs/build.log" 2>&1 || { tail -50 "$logs/build.log"; exit 1; }

echo "== GPU tests"
status=0
(cd "$build" && ctest -R '^test_cuda' -E parallel --output-on-failure) 2>&1 | tee "$logs/tests.log" ||
  status=1
# Training over NCCL against one GPU (skips on a machine of one GPU), with its lines shown.
(cd "$build" && ctest -R '^test_cuda_train_parallel$' -V) 2>&1 | tee "$logs/parallel.log" |
  grep -E "ok   |skip:|FAIL|tests passed|tests failed" | tee -a "$logs/tests.log" || status=1
grep -q "100% tests passed" "$logs/parallel.log" || status=1
# The numbers the tests measure (loss-curve distance and the like), from their logs.
for suite in test_cuda_train test_cuda_bf16; do
  "$build/$suite" --verbose 2>&1 | grep -E "largest|relative norm error|every mixer" |
    tee -a "$logs/tests.log" || true
done
grep -q "tests passed" "$logs/tests.log" || status=1

echo "== GPU benches"
: >"$logs/bench.log"
for bench in "$build"/bench_cuda_*; do
  [ -x "$bench" ] || continue
  "$bench" 2>&1 | tee -a "$logs/bench.log" || status=1
done
# The references, measured in the same run (PyTorch, where it is installed).
if [ $references = 0 ]; then
  echo "(--no-references: no reference timings)" | tee -a "$logs/bench.log"
elif python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  for ref in bench/reference/*_torch.py; do
    # fla autotunes its kernels on first use (minutes): bounded, so a slow reference cannot
    # hold the check.
    timeout 900 python3 "$ref" 2>&1 | tee -a "$logs/bench.log" || status=1
  done
else
  echo "(no PyTorch with CUDA here: no reference timings)" | tee -a "$logs/bench.log"
fi

echo "== summary on $gpu"
grep -E "tests passed|tests failed|ok   |skip:" "$logs/tests.log" || true
grep -E "^\|" "$logs/bench.log" || true
# hyla / reference for every pair the log holds, against the issue's 2x target.
if command -v python3 >/dev/null; then
  python3 scripts/gpu-ratios.py "$logs/bench.log" | tee "$logs/ratios.md"
fi
[ $status = 0 ] && echo "== GPU check passed" || echo "== GPU check FAILED"
exit $status
