#!/usr/bin/env bash
# What pgproxy's metrics endpoint costs (issue 15: < 2% of pgbench -S tps when scraped every second).
#
#   bench/metrics.sh                       # defaults below
#   ROUNDS=5 DURATION=10 CLIENTS=8 bench/metrics.sh
#
# A throwaway PostgreSQL (scripts/lib/pg.sh, loopback only), pgbench -i -s 10, and two pgproxy
# processes in front of it, the same build and options (SQL log and capture on, upstream over the
# server's Unix socket) except that the second has --metrics-listen and is scraped once a second
# (python3's urllib, a new connection each time, as Prometheus does) for the whole of each of its
# runs. ROUNDS rounds of pgbench -S -M simple, CLIENTS clients, DURATION seconds through each,
# the order rotated each round. Printed: each run's tps and the proxy's CPU per transaction
# (utime + stime, all threads, from /proc), then the medians, the spreads and the ratio
# metrics/plain; the target line says whether the median ratio is >= 0.98.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-8}
BUILD_DIR=${BUILD_DIR:-build/release}
for v in ROUNDS DURATION CLIENTS; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "$v must be a positive number" >&2; exit 2; }
done

scripts/install-deps.sh
[ -f "$BUILD_DIR/CMakeCache.txt" ] || cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" --target pgproxy >/dev/null
pgproxy_bin=$BUILD_DIR/tools/pgproxy/pgproxy

source scripts/lib/pg.sh
work=$(mktemp -d /tmp/pgwire-metrics-bench.XXXXXX)
pids=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  pg_stop
  rm -rf "$work"
}
trap cleanup EXIT
pg_start max_connections=$((CLIENTS + 50)) shared_buffers=256MB
pgbench -i -q -s 10 >/dev/null 2>&1
psql -q -c 'VACUUM ANALYZE'

start_proxy() {  # start_proxy NAME [OPTION...]: sets proxy_port, proxy_pid
  local name=$1
  shift
  proxy_port=$(free_port)
  "$pgproxy_bin" --listen 127.0.0.1:"$proxy_port" --upstream "$PG_DIR:$PG_PORT" --sql-log "$work/$name.log" \
    --capture "$work/$name.pgwcap" --stats-interval 0 "$@" 2>"$work/$name.err" &
  proxy_pid=$!
  pids+=("$proxy_pid")
  for _ in $(seq 100); do psql -p "$proxy_port" -Atc 'SELECT 1' >/dev/null 2>&1 && return 0; sleep 0.1; done
  cat "$work/$name.err" >&2
  exit 1
}
start_proxy plain
plain_port=$proxy_port plain_pid=$proxy_pid
metrics_port=$(free_port)
start_proxy metrics --metrics-listen 127.0.0.1:"$metrics_port"
scraped_port=$proxy_port scraped_pid=$proxy_pid

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
clk_tck=$(getconf CLK_TCK)
declare -A tps_runs cpu_runs
echo "$("$pgproxy_bin" --version 2>&1 | head -1), $(pgbench --version); $ROUNDS rounds of ${DURATION}s," \
  "pgbench -S -M simple -c $CLIENTS -j 2; the metrics way scraped every second"
for round in $(seq "$ROUNDS"); do
  ways=(plain metrics)
  [ $((round % 2)) = 0 ] && ways=(metrics plain)
  for way in "${ways[@]}"; do
    if [ "$way" = plain ]; then port=$plain_port pid=$plain_pid; else port=$scraped_port pid=$scraped_pid; fi
    scraper=
    if [ "$way" = metrics ]; then
      /usr/bin/python3 - "$metrics_port" >"$work/scrapes.out" 2>&1 <<'EOF' &
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/metrics"
ok = 0
while True:  # until killed; each scrape's count printed as it completes
    t = time.monotonic()
    with urllib.request.urlopen(url, timeout=5) as r:
        r.read()
    ok += 1
    print(ok, flush=True)
    time.sleep(max(0.0, 1.0 - (time.monotonic() - t)))
EOF
      scraper=$!
    fi
    ticks=$(cpu_ticks "$pid")
    pgbench -p "$port" -n -S -c "$CLIENTS" -j 2 -T "$DURATION" >"$work/run.out" 2>&1
    d=$(($(cpu_ticks "$pid") - ticks))
    scrapes=
    if [ -n "$scraper" ]; then
      kill "$scraper" 2>/dev/null || true
      wait "$scraper" 2>/dev/null || true
      scrapes=$(tail -n 1 "$work/scrapes.out")
    fi
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$work/run.out" | head -1)
    txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/run.out")
    [ -n "$tps" ] && [ -n "$txns" ] || { cat "$work/run.out" >&2; exit 1; }
    cpu=$(awk -v d="$d" -v hz="$clk_tck" -v n="$txns" 'BEGIN { printf "%.1f", d / hz * 1e6 / n }')
    tps_runs[$way]+=" $tps"
    cpu_runs[$way]+=" $cpu"
    echo "  round $round, $way: $tps tps, pgproxy CPU $cpu µs/txn${scrapes:+, $scrapes scrapes}"
  done
done
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
spread() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s-%s", lo, hi }'; }
p_tps=$(median <<<"${tps_runs[plain]}") m_tps=$(median <<<"${tps_runs[metrics]}")
echo "plain:   median $p_tps tps ($(spread <<<"${tps_runs[plain]}")), CPU $(median <<<"${cpu_runs[plain]}") µs/txn"
echo "metrics: median $m_tps tps ($(spread <<<"${tps_runs[metrics]}")), CPU $(median <<<"${cpu_runs[metrics]}") µs/txn"
ratio=$(awk -v a="$m_tps" -v b="$p_tps" 'BEGIN { printf "%.3f", a / b }')
verdict=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.98) ? "met" : "NOT met" }')
echo "target: scraped every second, pgproxy keeps >= 0.98x its tps: ${ratio}x $verdict"
