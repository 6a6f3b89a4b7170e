#!/usr/bin/env bash
# Configures and builds one variant into build/<variant>.
#   scripts/build.sh [release|asan]
set -euo pipefail
cd "$(dirname "$0")/.."
variant=${1:-release}
jobs=${JOBS:-$(nproc)}
case "$variant" in
  release) flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  asan) flags=(-DCMAKE_BUILD_TYPE=Debug -DPGWIRE_SANITIZE=ON) ;;
  *) echo "usage: $0 [release|asan]" >&2; exit 2 ;;
esac
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S . -B "build/$variant" "${generator[@]}" -DPGWIRE_WERROR=ON "${flags[@]}" >/dev/null
cmake --build "build/$variant" -j "$jobs"
