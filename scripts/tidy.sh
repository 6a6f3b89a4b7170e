#!/usr/bin/env bash
# clang-tidy (.clang-tidy's checks, every warning an error) on the C++ files
# changed since the last commit at which the whole tree was checked clean
# (.ci/tidy-base), plus uncommitted changes: the whole tree takes about 25
# CPU-minutes, a session's changes a few.
#   scripts/tidy.sh            changed files (needs build/release/compile_commands.json)
#   scripts/tidy.sh --all      every file; when clean, record HEAD in .ci/tidy-base
#   BUILD_DIR=...              another build directory
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build/release}
command -v clang-tidy >/dev/null || { echo "tidy: clang-tidy is not installed (scripts/install-deps.sh)" >&2; exit 2; }
[ -f "$build_dir/compile_commands.json" ] || { echo "tidy: no $build_dir/compile_commands.json; build first" >&2; exit 2; }

# The sources the build compiles (tidy needs their flags), relative to the tree.
mapfile -t compiled < <(python3 - "$build_dir/compile_commands.json" "$PWD" <<'PY'
import json, os, sys
root = sys.argv[2]
for e in json.load(open(sys.argv[1])):
    f = os.path.relpath(os.path.join(e["directory"], e["file"]), root)
    if not f.startswith(".."):
        print(f)
PY
)

all=0
[ "${1:-}" = "--all" ] && all=1
files=()
if [ "$all" -eq 1 ]; then
  files=("${compiled[@]}")
else
  base=$(cat .ci/tidy-base 2>/dev/null || true)
  if [ -z "$base" ] || ! git cat-file -e "$base^{commit}" 2>/dev/null; then
    echo "tidy: base commit '${base}' of .ci/tidy-base is not in this clone; checking the last commit's changes" >&2
    base=HEAD~1
  fi
  mapfile -t changed < <({ git diff --name-only "$base" -- '*.cpp' '*.hpp'; git ls-files --others --exclude-standard -- '*.cpp' '*.hpp'; } | sort -u)
  for f in "${compiled[@]}"; do
    for c in "${changed[@]}"; do
      # A changed header is checked through the source of the same name.
      if [ "$f" = "$c" ] || [ "${f%.cpp}" = "${c%.hpp}" ]; then files+=("$f"); break; fi
    done
  done
fi
mapfile -t files < <(printf '%s\n' "${files[@]}" | sort -u | sed '/^$/d')
if [ "${#files[@]}" -eq 0 ]; then
  echo "tidy: no changed C++ files to check"
  exit 0
fi
echo "tidy: ${#files[@]} file(s), $(nproc) at a time"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! printf '%s\n' "${files[@]}" |
    xargs -P "$(nproc)" -n 1 clang-tidy -p "$build_dir" --quiet --warnings-as-errors='*' >"$log" 2>&1; then
  grep -E -A3 '(warning|error):' "$log" >&2 || cat "$log" >&2
  echo "tidy: clang-tidy found problems (above)" >&2
  exit 1
fi
echo "tidy: clean"
if [ "$all" -eq 1 ]; then
  git rev-parse HEAD >.ci/tidy-base
  echo "tidy: the whole tree is clean at $(cat .ci/tidy-base); recorded in .ci/tidy-base (commit it)"
fi
