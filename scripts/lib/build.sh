# shellcheck shell=bash
# Sourced by the bench scripts (bash).
#
# bench_build DIR TYPE TARGET...: configures DIR with the flags of scripts/build.sh TYPE (release:
# RelWithDebInfo; asan: Debug with ASan + UBSan; both with -Werror) unless it is configured already,
# then builds TARGET... in it. Ninja when it is installed.
bench_build() {
  local dir=$1 type=$2 generator=() flags=()
  shift 2
  case "$type" in
    release) flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
    asan) flags=(-DCMAKE_BUILD_TYPE=Debug -DPGWIRE_SANITIZE=ON) ;;
    *) echo "bench_build: unknown build type $type" >&2; return 2 ;;
  esac
  if [ ! -f "$dir/CMakeCache.txt" ]; then
    command -v ninja >/dev/null && generator=(-G Ninja)
    cmake -S . -B "$dir" "${generator[@]}" -DPGWIRE_WERROR=ON "${flags[@]}" >/dev/null
  fi
  cmake --build "$dir" --target "$@" >/dev/null
}
