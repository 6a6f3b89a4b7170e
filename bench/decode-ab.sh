#!/usr/bin/env bash
# pgdump-log of another commit against this tree's, on the same capture, runs interleaved.
#
#   bench/decode-ab.sh REV            # e.g. bench/decode-ab.sh e5e3a74
#   DURATION=30 RUNS=9 bench/decode-ab.sh REV
#
# Builds pgdump-log of REV in a temporary worktree, records DURATION seconds of
# `pgbench -S -M extended -c 10` through this tree's pgproxy (--capture-backend),
# checks that both pgdump-logs print the same SQL log, then runs them alternately
# RUNS times each and prints the median, min and max wall and CPU time of each.
# For a change that must not slow decoding: a regression shows as a difference
# between the two medians larger than either's spread. Loopback only; stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: bench/decode-ab.sh REV}
DURATION=${DURATION:-30}
RUNS=${RUNS:-9}
scripts/install-deps.sh
scripts/build.sh release >/dev/null
source scripts/lib/pg.sh
work=$(mktemp -d /tmp/pgwire-decode-ab.XXXXXX)
proxy_pid=
cleanup() {
  set +e
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null && wait "$proxy_pid" 2>/dev/null
  pg_stop
  git worktree remove --force "$work/other" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

git worktree add -q --detach "$work/other" "$rev"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S "$work/other" -B "$work/other/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPGWIRE_TESTS=OFF >/dev/null
cmake --build "$work/other/build" --target pgdump-log >/dev/null
other="$work/other/build/tools/pgdump-log/pgdump-log"
ours=build/release/tools/pgdump-log/pgdump-log

pg_start >/dev/null
pgbench -i -q -s 10 >/dev/null 2>&1
port=$(free_port)
build/release/tools/pgproxy/pgproxy --listen 127.0.0.1:"$port" --upstream 127.0.0.1:"$PG_PORT" \
  --capture "$work/c.pgwcap" --capture-backend --sql-log /dev/null --stats-interval 0 2>"$work/proxy.err" &
proxy_pid=$!
sleep 1
pgbench -h 127.0.0.1 -p "$port" -S -M extended -c 10 -j 2 -T "$DURATION" -n >/dev/null 2>&1
kill -TERM "$proxy_pid"; wait "$proxy_pid" || true; proxy_pid=
echo "capture: $(($(stat -c %s "$work/c.pgwcap") >> 20)) MB of pgbench -S -M extended -c 10, ${DURATION} s"

"$other" --no-progress "$work/c.pgwcap" >"$work/other.sql"
"$ours" --no-progress "$work/c.pgwcap" >"$work/ours.sql"
if cmp -s "$work/other.sql" "$work/ours.sql"; then
  echo "outputs identical: $(wc -l <"$work/ours.sql") lines"
else
  echo "outputs DIFFER ($(wc -l <"$work/other.sql") vs $(wc -l <"$work/ours.sql") lines)"
fi
for _ in $(seq "$RUNS"); do
  for side in other ours; do
    bin=$other; [ $side = ours ] && bin=$ours
    /usr/bin/time -o "$work/t" -f "%e %U %S" "$bin" --no-progress "$work/c.pgwcap" >/dev/null
    echo "$side $(cat "$work/t")" >>"$work/times"
  done
done
stats() {  # stats COLUMN-EXPRESSION SIDE: "median (min, max)" of that column of SIDE's runs
  awk -v s="$2" '$1 == s {print '"$1"'}' "$work/times" | sort -n |
    awk '{v[NR] = $1} END {printf "%.3f s (min %.3f, max %.3f)", v[int((NR + 1) / 2)], v[1], v[NR]}'
}
for side in other ours; do
  label=$rev; [ $side = ours ] && label="this tree"
  printf '%-12s wall median %s   CPU median %s\n' "$label" "$(stats '$2' $side)" "$(stats '$3 + $4' $side)"
done
