#!/usr/bin/env bash
# pgproxy against a direct connection and pgbouncer, in one run.
#
#   bench/proxy.sh                  # DURATION=20 CLIENTS=50 ROUNDS=3 UPSTREAM=unix BUILD_DIR=build/release
#
# 1. A throwaway PostgreSQL (scripts/lib/pg.sh, max_connections=1100), `pgbench -i -s SCALE`, and
#    sysbench's oltp tables (prepared directly against the server) in database sbtest.
# 2. The ways in: direct; Debian's pgbouncer in session mode (trust auth, no logging); pgproxy
#    with the SQL log and the capture on (files in the temp dir); and a second pgproxy, the same
#    but with --no-io-uring (one send() per socket, as where io_uring is not allowed). Clients always connect over
#    TCP; both proxies reach the server the same way: UPSTREAM=unix (default; pgbouncer's own
#    default, and the way a proxy next to its server is set up) or UPSTREAM=tcp.
# 3. For each workload: pgbench -S -M simple, pgbench -S -M prepared (-c CLIENTS -j 2), sysbench
#    oltp_read_write (--threads CLIENTS), DURATION seconds each, through each way in; pgbouncer
#    twice, with its pool warmed by a 3 s run and with fresh server connections. ROUNDS rounds,
#    the order of the ways rotated each round (this 2-core VM drifts by tens of percent from one
#    run to the next); prints every run, then the median tps of each and the ratios of the
#    medians pgproxy/pgbouncer (both) and pgproxy/direct, and pgproxy's peak RSS (VmHWM) over
#    all of its runs.
# 4. Memory with idle connections: a fresh pgproxy, IDLE (1000) complete sessions opened through
#    it by a small python3 client (StartupMessage, authentication, ReadyForQuery; each one also
#    holds a real server backend), then left idle; prints pgproxy's VmRSS before and with them.
# Targets (issue 3): pgproxy >= 1.1x pgbouncer on every workload, >= 0.8x direct on pgbench -S,
# RSS with 1000 idle connections < 64 MB.
# Everything listens on 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20}
CLIENTS=${CLIENTS:-50}
ROUNDS=${ROUNDS:-3}
UPSTREAM=${UPSTREAM:-unix}
SCALE=${SCALE:-10}
IDLE=${IDLE:-1000}
build_dir=${BUILD_DIR:-build/release}

scripts/install-deps.sh  # sysbench, pgbouncer, the PostgreSQL server and clients (apt-get --no-upgrade)
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  cmake -S . -B "$build_dir" "${generator[@]}" -DPGWIRE_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build_dir" --target pgproxy >/dev/null
pgproxy_bin="$build_dir/tools/pgproxy/pgproxy"

source scripts/lib/pg.sh
work=$(mktemp -d /tmp/pgwire-proxy-bench.XXXXXX)
proxy_pid=
send_pid=
bouncer_pid=
stop_pid() {  # stop_pid PID: SIGTERM, wait; the exit status goes to $stopped_rc
  stopped_rc=0
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || stopped_rc=$?
}
cleanup() {
  set +e  # a failing kill or wait must not skip the rest
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null && wait "$proxy_pid" 2>/dev/null
  [ -n "$send_pid" ] && kill "$send_pid" 2>/dev/null && wait "$send_pid" 2>/dev/null
  [ -n "$bouncer_pid" ] && kill "$bouncer_pid" 2>/dev/null && wait "$bouncer_pid" 2>/dev/null
  pg_stop
  rm -rf "$work"
}
trap cleanup EXIT

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
pg_start max_connections=$((IDLE + 100)) shared_buffers=256MB
pgbench -i -q -s "$SCALE" >/dev/null 2>&1
createdb sbtest
sb_common=(--db-driver=pgsql --pgsql-host=127.0.0.1 --pgsql-user=postgres --pgsql-password= --pgsql-db=sbtest
           --tables=8 --table-size=10000)
sysbench oltp_read_write "${sb_common[@]}" --pgsql-port="$PG_PORT" --threads=4 prepare >"$work/sb-prepare.out" 2>&1 ||
  { cat "$work/sb-prepare.out" >&2; exit 1; }
psql -q -d sbtest -c 'VACUUM ANALYZE' && psql -q -c 'VACUUM ANALYZE'

case "$UPSTREAM" in
  unix) bouncer_host=$PG_DIR; proxy_upstream=$PG_DIR:$PG_PORT ;;  # the server's socket directory
  tcp) bouncer_host=127.0.0.1; proxy_upstream=127.0.0.1:$PG_PORT ;;
  *) echo "UPSTREAM must be unix or tcp" >&2; exit 2 ;;
esac
# pgbouncer: session pooling, trust (the user must still be listed in auth_file), nothing logged.
# It refuses to run as root: -u switches to the postgres user, which must read its files.
bouncer_port=$(free_port)
cat >"$work/userlist.txt" <<EOF
"postgres" ""
EOF
cat >"$work/pgbouncer.ini" <<EOF
[databases]
* = host=$bouncer_host port=$PG_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
unix_socket_dir =
auth_type = trust
auth_file = $work/userlist.txt
admin_users = postgres
pool_mode = session
max_client_conn = 1000
default_pool_size = 200
max_db_connections = 0
ignore_startup_parameters = extra_float_digits,options
log_connections = 0
log_disconnections = 0
logfile = $work/pgbouncer.log
pidfile =
EOF
bouncer_user=()
if [ "$(id -u)" -eq 0 ]; then
  chown -R postgres: "$work"
  bouncer_user=(-u postgres)
fi
pgbouncer "${bouncer_user[@]}" "$work/pgbouncer.ini" >"$work/pgbouncer.out" 2>&1 &
bouncer_pid=$!

pgproxy_port=$(free_port)
"$pgproxy_bin" --listen 127.0.0.1:"$pgproxy_port" --upstream "$proxy_upstream" --max-connections 2000 \
  --sql-log "$work/sql.log" --capture "$work/capture.pgwcap" --stats-interval 0 2>"$work/pgproxy.err" &
proxy_pid=$!
send_port=$(free_port)
"$pgproxy_bin" --listen 127.0.0.1:"$send_port" --upstream "$proxy_upstream" --max-connections 2000 --no-io-uring \
  --sql-log "$work/sql-send.log" --capture "$work/capture-send.pgwcap" --stats-interval 0 2>"$work/pgproxy-send.err" &
send_pid=$!

for port in "$bouncer_port" "$pgproxy_port" "$send_port"; do
  for _ in $(seq 100); do psql -p "$port" -Atc 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.1; done
  psql -p "$port" -Atc 'SELECT 1' >/dev/null || { cat "$work"/pgbouncer.* "$work/pgproxy.err" >&2; exit 1; }
done

# run_workload NAME PORT: prints tps.
run_workload() {
  local name=$1 port=$2 out="$work/$1-$2-$3.out"  # $3: which way in (and round), for the file name
  case "$name" in
    simple | prepared)
      pgbench -p "$port" -n -S -M "$name" -c "$CLIENTS" -j 2 -T "$DURATION" >"$out" 2>&1 ||
        { cat "$out" >&2; return 1; }
      grep -Eo 'tps = [0-9.]+' "$out" | head -1 | cut -d' ' -f3
      ;;
    sysbench)
      sysbench oltp_read_write "${sb_common[@]}" --pgsql-port="$port" --threads="$CLIENTS" --time="$DURATION" \
        --report-interval=0 run >"$out" 2>&1 || { cat "$out" >&2; return 1; }
      awk '/transactions:/ { gsub(/\(/, "", $3); print $3; exit }' "$out"
      ;;
  esac
}

# pgbouncer is measured twice. "pooled": its session pool already holds backends warmed by a
# short run of the same workload, as in a steady state. "fresh": its server connections are
# dropped first (KILL/RESUME on its console), so the run starts its own backends, as direct and
# pgproxy runs do: the difference between the two is pooling, not proxying.
bouncer_console() { psql -p "$bouncer_port" -d pgbouncer -qc "$1" >/dev/null; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A tps runs
ways=(direct pgbouncer fresh pgproxy send)
echo "upstream of both proxies: $UPSTREAM; $ROUNDS rounds, the order of the ways rotated each round" >&2
for workload in simple prepared sysbench; do
  for round in $(seq "$ROUNDS"); do
    for i in "${!ways[@]}"; do
      way=${ways[$(((i + round - 1) % ${#ways[@]}))]}
      case "$way" in
        direct) port=$PG_PORT ;;
        pgbouncer)
          port=$bouncer_port
          DURATION=3 run_workload "$workload" "$port" warmup >/dev/null
          ;;
        fresh)
          port=$bouncer_port
          for db in postgres sbtest; do bouncer_console "KILL $db" && bouncer_console "RESUME $db"; done
          ;;
        pgproxy) port=$pgproxy_port ;;
        send) port=$send_port ;;
      esac
      t=$(run_workload "$workload" "$port" "$way-$round")
      runs[$workload,$way]="${runs[$workload,$way]:-} $t"
      echo "  $workload round $round via $way: $t tps" >&2
    done
  done
  for way in "${ways[@]}"; do
    tps[$workload,$way]=$(tr ' ' '\n' <<<"${runs[$workload,$way]}" | grep . | median)
  done
done
proxy_hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$proxy_pid/status")
sb_errors=$(for way in direct pgbouncer fresh pgproxy send; do
  cat "$work/sysbench-"*"-$way-"*.out | awk '/ignored errors:/ { n += $3 } END { print n }'
done | paste -sd/)
stop_pid "$proxy_pid"; proxy_rc=$stopped_rc; proxy_pid=
stop_pid "$send_pid"; send_pid=
sql_lines=$(wc -l <"$work/sql.log")
cap_mb=$(($(stat -c %s "$work/capture.pgwcap") >> 20))

echo
printf '%-26s %8s %10s %10s %8s %16s %15s %14s %10s %14s\n' workload direct pgbouncer "(fresh)" pgproxy \
  pgproxy/bouncer "(vs fresh)" pgproxy/direct "(send())" "(send/bouncer)"
for workload in simple prepared sysbench; do
  case "$workload" in
    simple) label="pgbench -S -M simple" ;;
    prepared) label="pgbench -S -M prepared" ;;
    sysbench) label="sysbench oltp_read_write" ;;
  esac
  awk -v l="$label" -v d="${tps[$workload,direct]}" -v b="${tps[$workload,pgbouncer]}" \
    -v f="${tps[$workload,fresh]}" -v p="${tps[$workload,pgproxy]}" -v q="${tps[$workload,send]}" \
    'BEGIN { printf "%-26s %8.0f %10.0f %10.0f %8.0f %15.2fx %14.2fx %13.2fx %10.0f %13.2fx\n", l, d, b, f, p, p/b, p/f, p/d, q, q/b }'
done
echo "(pgbouncer: session pool warmed by a 3 s run of the same workload; (fresh): its server connections" \
  "dropped before the run, like direct and pgproxy runs, which start their own backends;" \
  "(send()): pgproxy --no-io-uring, one send() per socket instead of one io_uring call per poll round)"
echo "(median of $ROUNDS runs each; both proxies reach the server over $UPSTREAM;" \
  "$CLIENTS clients, ${DURATION}s each; pgbench -j 2, scale $SCALE; sysbench 8 tables x 10000 rows;" \
  "errors sysbench ignored (duplicate keys, deadlocks) direct/pgbouncer/fresh/pgproxy/send(): $sb_errors)"
echo "pgproxy: SQL log $sql_lines lines, capture $cap_mb MB, exit status $proxy_rc;" \
  "peak RSS (VmHWM) over all its runs: $((proxy_hwm / 1024)) MB ($proxy_hwm KiB)"
grep -h 'exiting:' "$work/pgproxy.err" | sed 's/^/pgproxy: /' || true

# Idle connections: a fresh pgproxy, so its RSS shows only what they cost.
"$pgproxy_bin" --listen 127.0.0.1:"$pgproxy_port" --upstream "$proxy_upstream" --max-connections 2000 \
  --sql-log "$work/sql-idle.log" --capture "$work/capture-idle.pgwcap" --stats-interval 0 2>"$work/pgproxy-idle.err" &
proxy_pid=$!
for _ in $(seq 100); do psql -p "$pgproxy_port" -Atc 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.1; done
python3 - "$pgproxy_port" "$proxy_pid" "$IDLE" <<'EOF'
# Opens N sessions through the proxy (StartupMessage as postgres, up to ReadyForQuery), keeps them
# open and idle, and reads the proxy's memory from /proc/PID/status.
import socket, struct, sys, time

port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

def status():
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out

def until_ready(s):
    buf = b""
    while True:
        while len(buf) >= 5:
            kind, length = buf[0:1], struct.unpack("!I", buf[1:5])[0]
            if len(buf) < 1 + length:
                break
            if kind == b"E":
                sys.exit("session refused: " + buf[5:1 + length].decode(errors="replace"))
            if kind == b"Z":
                return
            buf = buf[1 + length:]
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("connection closed before ReadyForQuery")
        buf += chunk

before = status()
params = b"user\0postgres\0database\0postgres\0application_name\0idle\0\0"
startup = struct.pack("!II", 8 + len(params), 196608) + params
socks = []
t0 = time.monotonic()
while len(socks) < n:
    batch = []
    for _ in range(min(50, n - len(socks))):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(startup)
        batch.append(s)
    for s in batch:
        until_ready(s)
    socks += batch
opened = time.monotonic() - t0
time.sleep(1)
with_idle = status()
print(f"idle connections: {n} complete sessions through pgproxy (each with its server backend) opened in "
      f"{opened:.1f} s; pgproxy VmRSS {before['VmRSS'] // 1024} MB before, "
      f"{with_idle['VmRSS'] // 1024} MB ({with_idle['VmRSS']} KiB) with them idle, "
      f"VmHWM {with_idle['VmHWM'] // 1024} MB; "
      f"{(with_idle['VmRSS'] - before['VmRSS']) / n:.1f} KiB per connection "
      f"(target < 64 MB: {'met' if with_idle['VmRSS'] < 64 * 1024 else 'NOT met'})")
for s in socks:
    s.close()
EOF
stop_pid "$proxy_pid"; proxy_pid=
[ "$stopped_rc" -eq 0 ] || echo "pgproxy (idle test) exited with status $stopped_rc" >&2
