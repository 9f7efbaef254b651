#!/usr/bin/env bash
# Run every hyla test: installs what is missing (scripts/setup.sh), then builds hyla twice, once
# optimized (build/) and once with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/),
# and runs all test suites in both; builds the fuzz targets with clang's libFuzzer (build-fuzz/)
# and runs each briefly on its corpus (docs/testing.md); where nvcc is installed, it also builds
# the CUDA backend (build-cuda/) and runs the GPU suites there, which skip without a GPU
# (scripts/gpu-check.sh runs them on one). Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
jobs=$(nproc)
scripts/format.sh --check

run_suite() { # build-dir ctest-args cmake-args...
  local dir=$1 ctest_args=$2
  shift 2
  echo "== $dir: configure and build"
  cmake -S . -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  echo "== $dir: test"
  # shellcheck disable=SC2086 # ctest_args: words
  (cd "$dir" && ctest --output-on-failure -j"$jobs" $ctest_args)
}

run_suite build "" -DCMAKE_BUILD_TYPE=Release
# LeakSanitizer reports any leak as a failure; detect_leaks is on by default on Linux. The bench
# scripts' checks (label bench) run in the optimized build only: they check the scripts' plumbing,
# and the training paths they drive run sanitized in their own tests (train_parallel,
# sweep_parallel, mpi_collective_modes, test_documents).
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite build-asan "-LE bench" -DCMAKE_BUILD_TYPE=Debug -DHYLA_SANITIZE=ON
if echo 'extern "C" int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' |
  clang++ -fsanitize=fuzzer -x c++ - -o /dev/null 2>/dev/null; then
  echo "== build-fuzz: configure and build the fuzz targets (clang, libFuzzer, ASan + UBSan)"
  cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DHYLA_FUZZ=ON \
    -DHYLA_TESTS=OFF -DHYLA_MPI=OFF >/dev/null
  cmake --build build-fuzz -j"$jobs" --target fuzz
  echo "== build-fuzz: each target briefly on its corpus"
  (cd build-fuzz && ctest --output-on-failure -j"$jobs")
else
  echo "== no clang with libFuzzer (clang, libclang-rt-dev): the fuzz targets were skipped"
fi
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
if [ -x "$nvcc" ]; then
  echo "== build-cuda: configure and build (CUDA backend, compiled here, run by scripts/gpu-check.sh)"
  cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DHYLA_CUDA=ON \
    -DCMAKE_CUDA_COMPILER="$nvcc" >/dev/null
  # only what has GPU code: the CPU suites already ran twice above
  mapfile -t gpu_targets < <(ls tests/cuda/test_cuda_*.c bench/bench_cuda_*.c | xargs -n1 basename |
    sed 's/\.c$//')
  cmake --build build-cuda -j"$jobs" --target hyla_cli "${gpu_targets[@]}"
  (cd build-cuda && ctest --output-on-failure -R '^test_cuda')
else
  echo "== no nvcc: the CUDA backend was not compiled"
fi
echo "== all tests passed (optimized, sanitized, fuzz and, where nvcc is, CUDA builds)"
