#!/usr/bin/env bash
# A real fuzz campaign with clang's libFuzzer (ASan + UBSan), one harness at a time.
#   scripts/fuzz.sh [SECONDS_PER_HARNESS] [HARNESS...]
# New corpus entries go to build/fuzz/corpus-<harness>/ (copy the interesting
# ones into corpus/fuzz/ to keep them); crashes to build/fuzz/artifacts/, which
# should be committed under corpus/fuzz/ so the test suite replays them.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(protocol_fuzz capture_reader_fuzz binary_values_fuzz pcap_export_fuzz)

command -v clang++ >/dev/null || { scripts/install-deps.sh; apt-get install -y -qq --no-upgrade clang libclang-rt-dev >/dev/null; }
cov="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -g"
CXX=clang++ cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGWIRE_FUZZ=ON \
  -DPGWIRE_TESTS=ON -DCMAKE_CXX_FLAGS="$cov" >/dev/null
cmake --build build/fuzz --target "${harnesses[@]}" -j "$(nproc)"
mkdir -p build/fuzz/artifacts

declare -A seeds=([protocol_fuzz]="corpus/fuzz/protocol corpus/fuzz/seeds" [capture_reader_fuzz]="corpus/fuzz/capture"
  [binary_values_fuzz]="corpus/fuzz/binary_values" [pcap_export_fuzz]="corpus/fuzz/capture corpus/captures")
for h in "${harnesses[@]}"; do
  work="build/fuzz/corpus-$h"
  mkdir -p "$work"
  # shellcheck disable=SC2086
  for d in ${seeds[$h]}; do [ -d "$d" ] && cp -n "$d"/* "$work"/ 2>/dev/null || true; done
  echo "== $h: ${seconds}s"
  log="build/fuzz/$h.log"
  set +e
  "build/fuzz/tests/fuzz/$h" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix=build/fuzz/artifacts/"$h"- "$work" >"$log" 2>&1
  rc=$?
  set -e
  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+.*DONE' "$log" || tail -5 "$log"
  echo "$h: exit $rc, corpus $(ls "$work" | wc -l) inputs, crashes $(ls build/fuzz/artifacts | grep -c "^$h-" || true)"
  [ $rc -eq 0 ] || { echo "$h found a problem: see $log"; exit 1; }
done
