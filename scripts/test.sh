#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds with -Werror, runs
# every test (unit, corpus replay, integration against a throwaway PostgreSQL
# the tests start themselves), then the same suite again under
# AddressSanitizer + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

for variant in release asan; do
  echo "== $variant: build"
  scripts/build.sh "$variant"
  echo "== $variant: test"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  ctest --test-dir "build/$variant" --output-on-failure -j "$(nproc)" --timeout 600
done
