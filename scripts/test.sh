#!/usr/bin/env bash
# test.sh — the whole test suite, as CI runs it: install dependencies, build a
# release build and an ASan+UBSan build, run every test on both, check
# formatting and the module layering.  Fails loudly on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
jobs=$(nproc)

echo "== format check"
bad=$(git ls-files '*.c' '*.h' | xargs clang-format --dry-run 2>&1 | grep -c 'warning:' || true)
if [ "$bad" != 0 ]; then
  git ls-files '*.c' '*.h' | xargs clang-format --dry-run 2>&1 | grep 'warning:' | cut -d: -f1 | sort -u
  echo "clang-format: $bad places to fix (run: git ls-files '*.c' '*.h' | xargs clang-format -i)"
  exit 1
fi

echo "== release build"
scripts/build.sh build
(cd build && ctest --output-on-failure -j"$jobs")
echo "== release build and tests done at ${SECONDS}s"

echo "== sanitizer build (ASan+UBSan)"
scripts/build.sh build-asan -DIMGPIPE_SANITIZE=ON
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j"$jobs")
echo "== all tests passed (release and sanitizer builds) in ${SECONDS}s"
