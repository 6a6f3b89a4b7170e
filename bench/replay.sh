#!/usr/bin/env bash
# Benchmark: our pgreplay against Debian's pgreplay (laurenz/pgreplay) on the same recorded run.
#
#   bench/replay.sh                      # DURATION=10 CLIENTS=10 SCALE=10 BUILD_DIR=build/release
#
# 1. A throwaway PostgreSQL (scripts/lib/pg.sh) that logs every statement to csvlog (what Debian's
#    pgreplay reads), and pgbench -i -s SCALE.
# 2. One run of `pgbench -S -M extended -c CLIENTS -T DURATION` through pgproxy --capture-backend:
#    the capture and the server's csvlog record the same run.
# 3. Replays of that run into the same server (read-only: the same state for both): ours with
#    --speed max, Debian's with -r -j -s 1000 from its replay file (pgreplay -f -c). Prints
#    statements/s of both and the ratio (target: ours >= 2x).
# 4. A DURATION-s TPC-B run (read-write, -c CLIENTS) recorded through pgproxy and replayed with
#    --speed max into a copy of the database taken just before it: expect zero errors.
# 5. A rate-limited run (pgbench -S -R RATE, the server keeps up) replayed at --speed 1: prints the
#    p99 lag behind schedule (target: <= 2 ms).
# Needs: cmake/ninja, the PostgreSQL server and client packages, python3; installs Debian's
# pgreplay with apt-get --no-upgrade if it is missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-10}
SCALE=${SCALE:-10}
RATE=${RATE:-1000}
build_dir=${BUILD_DIR:-build/release}

generator=()
if [ ! -f "$build_dir/CMakeCache.txt" ] && command -v ninja >/dev/null; then generator=(-G Ninja); fi
cmake -S . -B "$build_dir" "${generator[@]}" -DPGWIRE_WERROR=ON >/dev/null
cmake --build "$build_dir" --target pgreplay pgproxy >/dev/null
ours="$build_dir/tools/pgreplay/pgreplay"
proxy="$build_dir/tools/pgproxy/pgproxy"

# Debian's pgreplay is also called pgreplay: always by its full path.
debian=/usr/bin/pgreplay
if [ ! -x "$debian" ]; then
  echo "installing Debian's pgreplay (apt-get install --no-upgrade pgreplay)" >&2
  if [ "$(id -u)" -eq 0 ]; then
    apt-get install -y --no-upgrade pgreplay >/dev/null || { apt-get update >/dev/null && apt-get install -y --no-upgrade pgreplay >/dev/null; }
  else
    sudo apt-get install -y --no-upgrade pgreplay >/dev/null
  fi
fi

source scripts/lib/pg.sh
work=$(mktemp -d /tmp/pgreplay-bench.XXXXXX)
proxy_pid=
cleanup() {
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null && wait "$proxy_pid" 2>/dev/null
  [ -n "${KEEP:-}" ] && cp -r "$PG_DIR/data/log" "$work/serverlog" 2>/dev/null; pg_stop
  if [ -n "${KEEP:-}" ]; then echo "kept $work and $PG_DIR" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# What Debian's pgreplay needs in the log (see its man page). Statements are logged only while
# log_statement is switched to 'all' below (ALTER SYSTEM: a -c setting could not be changed), so
# the setup does not end up in the replay.
pg_start log_destination=csvlog logging_collector=on log_directory=log log_filename=bench.log \
  log_min_messages=error log_min_error_statement=log log_connections=on log_disconnections=on \
  lc_messages=C
csvlog="$PG_DIR/data/log/bench.csv"
export PGDATABASE=bench
psql -qX -d postgres -c "CREATE DATABASE bench"
pgbench -i -q -s "$SCALE" bench >"$work/init.log" 2>&1

# Starts pgproxy recording to $1 (extra options after it); sets proxy_port.
start_proxy() {
  local capture=$1
  shift
  "$proxy" --listen 127.0.0.1:0 --upstream "127.0.0.1:$PG_PORT" --capture "$capture" --sql-log '' \
    --stats-interval 0 "$@" >"$work/proxy.out" 2>&1 &
  proxy_pid=$!
  for _ in $(seq 100); do
    proxy_port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$work/proxy.out" 2>/dev/null | cut -d: -f2 || true)
    [ -n "$proxy_port" ] && return 0
    sleep 0.1
  done
  cat "$work/proxy.out" >&2
  return 1
}
stop_proxy() {
  kill "$proxy_pid"
  wait "$proxy_pid" 2>/dev/null || true
  proxy_pid=
}
set_log_statement() {
  psql -qX -d postgres -c "ALTER SYSTEM SET log_statement = '$1'" -c "SELECT pg_reload_conf()" >/dev/null
  sleep 0.5
}
json() {  # json FILE EXPRESSION (python, the report is `r`)
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1"
}

echo "== 1. record: pgbench -S -M extended -c $CLIENTS -T $DURATION (scale $SCALE) through pgproxy"
set_log_statement all
start_proxy "$work/select.cap" --capture-backend
pgbench -h 127.0.0.1 -p "$proxy_port" -n -S -M extended -c "$CLIENTS" -j 2 -T "$DURATION" bench \
  >"$work/pgbench-select.log" 2>&1
stop_proxy
set_log_statement none
original=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/pgbench-select.log")
original_tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$work/pgbench-select.log")
echo "   original run: $original transactions, $original_tps tps (through pgproxy)"

echo "== 2. ours: pgreplay --speed max"
"$ours" -h 127.0.0.1 -p "$PG_PORT" --speed max --no-progress --report "$work/ours.json" "$work/select.cap" \
  >"$work/ours.txt"
ours_n=$(json "$work/ours.json" 'r["statements"]["total"]')
ours_s=$(json "$work/ours.json" 'r["run_time_s"]')
ours_rate=$(python3 -c "print(round($ours_n / $ours_s, 1))")
ours_failed=$(json "$work/ours.json" 'r["sessions"]["failed"]')
echo "   $ours_n statements in $ours_s s: $ours_rate statements/s ($ours_failed failed sessions)"

echo "== 3. Debian's pgreplay -r -j -s 1000 (from its -f -c replay file)"
"$debian" -f -c -o "$work/debian.replay" "$csvlog" >"$work/debian-parse.txt" 2>&1
start=$(date +%s.%N)
"$debian" -r -j -s 1000 -h 127.0.0.1 -p "$PG_PORT" "$work/debian.replay" >"$work/debian.txt" 2>&1 || true
end=$(date +%s.%N)
# Its report: "Total run time: 10.376 seconds", "SQL statements executed: 10404".
deb_s=$(sed -n 's/^Total run time: \([0-9.]*\) seconds.*/\1/p' "$work/debian.txt" | head -n 1)
[ -n "$deb_s" ] || deb_s=$(python3 -c "print(round($end - $start, 3))")
deb_n=$(sed -n 's/^SQL statements executed: \([0-9]*\).*/\1/p' "$work/debian.txt" | head -n 1)
if [ -z "$deb_n" ]; then
  echo "   could not read the statement count from Debian's pgreplay; its output:" >&2
  cat "$work/debian.txt" >&2
  exit 1
fi
deb_rate=$(python3 -c "print(round($deb_n / $deb_s, 1))")
echo "   $deb_n statements in $deb_s s: $deb_rate statements/s"
echo "   ratio ours/Debian: $(python3 -c "print(round($ours_rate / $deb_rate, 2))")x"

echo "== 4. TPC-B: pgbench -c $CLIENTS -T $DURATION recorded, replayed --speed max into a copy"
psql -qX -d postgres -c "CREATE DATABASE bench_before_tpcb TEMPLATE bench"
start_proxy "$work/tpcb.cap" --capture-backend
pgbench -h 127.0.0.1 -p "$proxy_port" -n -M extended -c "$CLIENTS" -j 2 -T "$DURATION" bench \
  >"$work/pgbench-tpcb.log" 2>&1
stop_proxy
echo "   original run: $(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$work/pgbench-tpcb.log") tps"
"$ours" -h 127.0.0.1 -p "$PG_PORT" --speed max --no-progress --map-database bench=bench_before_tpcb \
  --report "$work/tpcb.json" "$work/tpcb.cap" >"$work/tpcb.txt" || true
echo "   $(json "$work/tpcb.json" 'r["statements"]["total"]') statements," \
  "$(json "$work/tpcb.json" 'r["statements"]["error"]') errors," \
  "$(json "$work/tpcb.json" 'r["sessions"]["failed"]') failed sessions," \
  "$(json "$work/tpcb.json" 'r["statements"]["per_second"]') statements/s"

echo "== 5. lag at --speed 1: pgbench -S -R $RATE -c $CLIENTS -T $DURATION recorded, replayed at speed 1"
start_proxy "$work/rate.cap" --capture-backend
pgbench -h 127.0.0.1 -p "$proxy_port" -n -S -M extended -R "$RATE" -c "$CLIENTS" -j 2 -T "$DURATION" bench \
  >"$work/pgbench-rate.log" 2>&1
stop_proxy
"$ours" -h 127.0.0.1 -p "$PG_PORT" --speed 1 --no-progress --report "$work/rate.json" "$work/rate.cap" \
  >"$work/rate.txt" || true
echo "   lag behind schedule: p50 $(json "$work/rate.json" 'r["lag"]["p50_ms"]') ms," \
  "p99 $(json "$work/rate.json" 'r["lag"]["p99_ms"]') ms, max $(json "$work/rate.json" 'r["lag"]["max_ms"]') ms" \
  "over $(json "$work/rate.json" 'r["lag"]["count"]') frames; pgreplay's own dispatch delay p99" \
  "$(json "$work/rate.json" 'r["dispatch_delay"]["p99_ms"]') ms; the OS woke it late by p99" \
  "$(json "$work/rate.json" 'r["wake_delay"]["p99_ms"]') ms (load average: $(cut -d' ' -f1 /proc/loadavg))"

echo "== summary"
echo "   statements/s: ours $ours_rate, Debian $deb_rate, ratio $(python3 -c "print(round($ours_rate / $deb_rate, 2))")x"
echo "   TPC-B replay errors: $(json "$work/tpcb.json" 'r["statements"]["error"]')"
echo "   speed 1 lag p99: $(json "$work/rate.json" 'r["lag"]["p99_ms"]') ms"
