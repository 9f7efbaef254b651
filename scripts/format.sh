#!/usr/bin/env bash
# Format every C and C++ source with the repository's .clang-format, or with --check only report the
# files that differ from it (exit 1). scripts/test.sh runs the check.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "format.sh: clang-format is missing" >&2; exit 1; }
mapfile -t files < <(git ls-files '*.c' '*.cc' '*.h' '*.cu' '*.cuh')
if [ "${1:-}" = "--check" ]; then
  bad=$(for f in "${files[@]}"; do clang-format "$f" | cmp -s - "$f" || echo "$f"; done)
  [ -z "$bad" ] && { echo "format: all ${#files[@]} files follow .clang-format"; exit 0; }
  echo "format: these files differ from .clang-format (run scripts/format.sh):" >&2
  echo "$bad" >&2
  exit 1
fi
clang-format -i "${files[@]}"
