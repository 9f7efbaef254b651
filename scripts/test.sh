#!/usr/bin/env bash
# Run every hyla test: installs what is missing (scripts/setup.sh), then builds hyla twice, once
# optimized (build/) and once with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/),
# and runs all test suites in both. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
jobs=$(nproc)
scripts/format.sh --check

run_suite() { # build-dir cmake-args...
  local dir=$1
  shift
  echo "== $dir: configure and build"
  cmake -S . -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  echo "== $dir: test"
  (cd "$dir" && ctest --output-on-failure -j"$jobs")
}

run_suite build -DCMAKE_BUILD_TYPE=Release
# LeakSanitizer reports any leak as a failure; detect_leaks is on by default on Linux.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DHYLA_SANITIZE=ON
echo "== all tests passed (optimized and sanitized builds)"
