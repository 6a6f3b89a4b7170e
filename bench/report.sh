#!/usr/bin/env bash
# What the HTML report costs on a large capture: pgdump-log --stats against
# pgdump-log --stats --report-html on the same capture, in one run.
#
# Records pgbench -M extended -c 10 (a mix of the built-in select-only and
# TPC-B scripts, so that there are updates and several statements; pgbench
# stops a client at its first error, so there are none) through pgproxy with --capture-backend and --rotate-size 256M until
# the capture set reaches TARGET_MB (default 1024), then reads the set (a
# directory, one stream) ROUNDS times (default 3) each way, the order of the
# two ways rotated every round. Prints, per way, the median and the spread of
# wall time, CPU time (user + system) and peak RSS, and the size of the report.
# Loopback only; everything stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_MB=${TARGET_MB:-1024}
ROUNDS=${ROUNDS:-3}
scripts/install-deps.sh
scripts/build.sh release >/dev/null
bin=build/release/tools
source scripts/lib/pg.sh
work=$(mktemp -d /tmp/pgwire-bench.XXXXXX)
cleanup() {
  [ -n "${bench_pid:-}" ] && kill "$bench_pid" 2>/dev/null || true
  [ -n "${proxy_pid:-}" ] && kill "$proxy_pid" 2>/dev/null || true
  pg_stop
  rm -rf "$work"
}
trap cleanup EXIT
pg_start
pgbench -i -q -s 10 >/dev/null 2>&1
proxy_port=$(free_port)
mkdir "$work/capture"
"$bin/pgproxy/pgproxy" --listen 127.0.0.1:"$proxy_port" --upstream 127.0.0.1:"$PG_PORT" \
  --capture "$work/capture/bench.pgwcap" --capture-backend --rotate-size 256M --sql-log /dev/null \
  --stats-interval 0 2>"$work/proxy.err" &
proxy_pid=$!
sleep 1
pgbench -h 127.0.0.1 -p "$proxy_port" -M extended -c 10 -j 2 -T 3600 -n -b select-only@80 -b tpcb-like@20 \
  >"$work/pgbench.out" 2>&1 &
bench_pid=$!
started=$(date +%s)
while sleep 2; do
  mb=$(($(du -sb "$work/capture" | cut -f1) >> 20))
  [ "$mb" -ge "$TARGET_MB" ] && break
  kill -0 "$bench_pid" 2>/dev/null || { cat "$work/pgbench.out"; echo "pgbench stopped early" >&2; exit 1; }
done
kill -TERM "$bench_pid"; wait "$bench_pid" 2>/dev/null || true; bench_pid=
kill -TERM "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true; proxy_pid=
cap_bytes=$(du -sb "$work/capture" | cut -f1)
echo "recorded: pgbench -M extended -c 10 (select-only 80, tpcb-like 20) for" \
  "$(($(date +%s) - started)) s through pgproxy --capture-backend: $(ls "$work/capture" | wc -l) files," \
  "$((cap_bytes >> 20)) MB"
cat "$work/capture"/* >/dev/null  # into the page cache, for both ways alike

run() {  # run WAY: one timed run; appends "wall cpu rss" to $work/WAY.times
  local way=$1 t0 t1
  local args=(--no-progress --stats "$work/capture")
  [ "$way" = html ] && args+=(--report-html "$work/report.html")
  t0=$(date +%s.%N)
  /usr/bin/time -o "$work/time.out" -f "%U %S %M" "$bin/pgdump-log/pgdump-log" "${args[@]}" >"$work/$way.out" 2>"$work/$way.err" ||
    { cat "$work/$way.err" >&2; exit 1; }
  t1=$(date +%s.%N)
  awk -v w="$(echo "$t1 - $t0" | bc -l)" '{printf "%.3f %.3f %d\n", w, $1 + $2, $3}' "$work/time.out" >>"$work/$way.times"
}
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then run stats; run html; else run html; run stats; fi
done
cmp -s "$work/stats.out" "$work/html.out" || { echo "--stats printed different figures with --report-html" >&2; exit 1; }
summary() {  # summary WAY COLUMN: "median (min-max)"
  awk -v c="$2" '{print $c}' "$work/$1.times" | sort -n |
    awk '{a[NR]=$1} END {printf "%s (%s-%s)", a[int((NR+1)/2)], a[1], a[NR]}'
}
statements=$(grep -Eo 'Latency \(ms\), [0-9]+ statements' "$work/stats.out" | grep -Eo '[0-9]+' || echo "?")
echo "statements in the capture: $statements; $ROUNDS rounds, order rotated; median (min-max)"
printf '%-36s %-24s %-24s %s\n' "way" "wall s" "CPU s" "peak RSS KiB"
for way in stats html; do
  label="pgdump-log --stats"
  [ "$way" = html ] && label="pgdump-log --stats --report-html"
  printf '%-36s %-24s %-24s %s\n' "$label" "$(summary "$way" 1)" "$(summary "$way" 2)" "$(summary "$way" 3)"
done
echo "report: $(stat -c %s "$work/report.html") bytes for $((cap_bytes >> 20)) MB of capture"
