#!/usr/bin/env bash
# The whole test suite: installs what is missing, checks the formatting
# (.clang-format), builds with -Werror, runs clang-tidy on the files changed
# since the tree was last checked whole (scripts/tidy.sh), runs every test
# (unit, corpus replay, integration against a throwaway PostgreSQL the tests
# start themselves, the installed library), the .deb end to end
# (scripts/check-deb.sh, as root), then the same suite again under
# AddressSanitizer + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

echo "== format"
scripts/check-format.sh

for variant in release asan; do
  echo "== $variant: build"
  scripts/build.sh "$variant"
  if [ "$variant" = release ]; then
    echo "== clang-tidy (files changed since .ci/tidy-base)"
    scripts/tidy.sh
  fi
  echo "== $variant: test"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  ctest --test-dir "build/$variant" --output-on-failure -j "$(nproc)" --timeout 600
  if [ "$variant" = release ]; then
    # Installs and purges the package: as root only (77: skipped, said why).
    echo "== release: the .deb installed, the service run from it (scripts/check-deb.sh)"
    scripts/check-deb.sh --no-build || [ $? -eq 77 ]
  fi
done
