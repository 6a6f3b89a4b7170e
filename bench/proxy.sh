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
#
#   TLS=1 bench/proxy.sh            # the same with TLS on every leg (docs/pgproxy-tls.md); UPSTREAM=tcp
#
# 5. TLS=1: a throwaway CA, server and proxy certificates (SAN DNS:localhost, IP:127.0.0.1; keys
#    0600; TLS_KEY=rsa, 2048 bits, the default, or TLS_KEY=ec, P-256) made with the openssl tool
#    in the temp dir. PostgreSQL runs with ssl=on and a pg_hba that takes TCP only over TLS
#    (hostssl trust, hostnossl reject). Both proxies reach it over TCP (there is no TLS over a Unix
#    socket; UPSTREAM=unix is refused) with TLS: pgbouncer with client_tls_sslmode=require (the
#    proxy certificate) and server_tls_sslmode=require; pgproxy (both) with --tls-cert/--tls-key
#    and --upstream-sslmode require, SQL log and capture on as above. Every client (pgbench,
#    sysbench, psql; direct ones too) runs with PGSSLMODE=require. sysbench 1.0's pgsql driver has
#    no TLS option, but it connects with libpq's PQsetdbLogin, which takes PGSSLMODE from the
#    environment like any other libpq client (and the server's pg_hba refuses it otherwise).
#    Before the runs, the protocol and cipher of each way's client leg (psql's \conninfo) and
#    server leg (pg_stat_ssl) are printed. The workloads are those above plus pgbench -C -S
#    (-c CLIENTS -j 2): a new connection, TLS handshake(s) included, per transaction, so its tps
#    are connections per second (pgbench's "average connection time" is printed too).
#    pgbouncer keeps its server connections across client connections, pgproxy and direct do not:
#    with -C, the pooled pgbouncer skips the server's TLS handshake and backend start; its "fresh"
#    run uses each server connection once (server_lifetime = 0), a new backend per client
#    connection as through pgproxy.
#    Also printed: the spread (min-max) of each way's runs, the CPU time of each proxy process per
#    transaction (from /proc/PID/stat), and the targets met or not. The idle sessions each do
#    SSLRequest and a TLS handshake (python's ssl, no verification) before their StartupMessage.
# Targets with TLS: pgproxy >= 1.1x pgbouncer tps on pgbench -S simple and prepared and on
# sysbench oltp_read_write; pgbench -C connections/s >= pgbouncer's; RSS with 1000 idle TLS
# sessions < 96 MB.
# Everything listens on 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20}
CLIENTS=${CLIENTS:-50}
ROUNDS=${ROUNDS:-3}
TLS=${TLS:-0}
TLS_KEY=${TLS_KEY:-rsa}
if [ "$TLS" = 1 ]; then UPSTREAM=${UPSTREAM:-tcp}; else UPSTREAM=${UPSTREAM:-unix}; fi
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

case "$TLS" in
  0) ;;
  1)
    [ "$UPSTREAM" = tcp ] || { echo "TLS=1 needs UPSTREAM=tcp: there is no TLS over a Unix socket" >&2; exit 2; }
    command -v openssl >/dev/null || { echo "TLS=1 needs the openssl tool (apt-get install openssl)" >&2; exit 1; }
    ;;
  *) echo "TLS must be 0 or 1" >&2; exit 2 ;;
esac
case "$TLS_KEY" in
  rsa) newkey=(-newkey rsa:2048) ;;
  ec) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
  *) echo "TLS_KEY must be rsa or ec" >&2; exit 2 ;;
esac

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
pg_tls=()
proxy_tls=()
if [ "$TLS" = 1 ]; then
  # A throwaway CA signs the server's certificate and the one both proxies show their clients;
  # nothing comes from the system's openssl.cnf. Keys and certificates 0600. When we are root,
  # the whole temp dir goes to the postgres user, which runs the server and pgbouncer and must
  # own the server's key; pgproxy, as root, takes a key of another owner with mode 0600.
  tls=$work/tls
  mkdir "$tls"
  printf '%s\n' '[req]' 'distinguished_name = dn' 'prompt = no' '[dn]' \
    '[ca]' 'basicConstraints = critical, CA:true' 'keyUsage = critical, keyCertSign, cRLSign' \
    'subjectKeyIdentifier = hash' \
    '[leaf]' 'basicConstraints = critical, CA:false' 'keyUsage = critical, digitalSignature, keyEncipherment' \
    'extendedKeyUsage = serverAuth' 'subjectAltName = DNS:localhost, IP:127.0.0.1' \
    'authorityKeyIdentifier = keyid' >"$tls/openssl.cnf"
  # TCP only over TLS; the Unix socket line (initdb's) serves nothing but pg_ctl.
  printf '%s\n' 'local all all trust' 'hostssl all all 127.0.0.1/32 trust' \
    'hostnossl all all 127.0.0.1/32 reject' >"$tls/pg_hba.conf"
  (
    cd "$tls"
    umask 077
    export OPENSSL_CONF=$tls/openssl.cnf
    openssl req -x509 -config openssl.cnf "${newkey[@]}" -noenc -keyout ca.key -out ca.crt -days 2 \
      -subj "/CN=pgwire-toolkit bench CA" -extensions ca
    for name in server proxy; do
      openssl req -x509 -config openssl.cnf "${newkey[@]}" -noenc -keyout "$name.key" -out "$name.crt" -days 2 \
        -subj "/CN=localhost" -CA ca.crt -CAkey ca.key -extensions leaf
    done
    openssl verify -CAfile ca.crt server.crt proxy.crt
  ) >"$work/tls.out" 2>&1 || { cat "$work/tls.out" >&2; exit 1; }
  [ "$(id -u)" -eq 0 ] && chown -R postgres: "$work"
  pg_tls=(ssl=on ssl_cert_file="$tls/server.crt" ssl_key_file="$tls/server.key" hba_file="$tls/pg_hba.conf")
  proxy_tls=(--tls-cert "$tls/proxy.crt" --tls-key "$tls/proxy.key" --upstream-sslmode require)
  echo "TLS on every leg: certificates with $(openssl x509 -in "$tls/proxy.crt" -noout -text |
    awk '/Public Key Algorithm:|Public-Key:|NIST CURVE:/ { $1 = $1; printf "%s%s", sep, $0; sep = ", " }')"
fi
pg_start max_connections=$((IDLE + 100)) shared_buffers=256MB "${pg_tls[@]}"
[ "$TLS" = 1 ] && export PGSSLMODE=require  # every libpq client from here on: pgbench, sysbench, psql
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
if [ "$TLS" = 1 ]; then
  printf "%s\n" "client_tls_sslmode = require" "client_tls_cert_file = $tls/proxy.crt" \
    "client_tls_key_file = $tls/proxy.key" "server_tls_sslmode = require" >>"$work/pgbouncer.ini"
fi
bouncer_user=()
if [ "$(id -u)" -eq 0 ]; then
  chown -R postgres: "$work"
  bouncer_user=(-u postgres)
fi
pgbouncer "${bouncer_user[@]}" "$work/pgbouncer.ini" >"$work/pgbouncer.out" 2>&1 &
bouncer_pid=$!

pgproxy_port=$(free_port)
"$pgproxy_bin" --listen 127.0.0.1:"$pgproxy_port" --upstream "$proxy_upstream" --max-connections 2000 \
  "${proxy_tls[@]}" --sql-log "$work/sql.log" --capture "$work/capture.pgwcap" --stats-interval 0 \
  2>"$work/pgproxy.err" &
proxy_pid=$!
send_port=$(free_port)
"$pgproxy_bin" --listen 127.0.0.1:"$send_port" --upstream "$proxy_upstream" --max-connections 2000 --no-io-uring \
  "${proxy_tls[@]}" --sql-log "$work/sql-send.log" --capture "$work/capture-send.pgwcap" --stats-interval 0 \
  2>"$work/pgproxy-send.err" &
send_pid=$!

for port in "$bouncer_port" "$pgproxy_port" "$send_port"; do
  for _ in $(seq 100); do psql -p "$port" -Atc 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.1; done
  psql -p "$port" -Atc 'SELECT 1' >/dev/null || { cat "$work"/pgbouncer.* "$work/pgproxy.err" >&2; exit 1; }
done
if [ "$TLS" = 1 ]; then
  # What each way in negotiates: the client leg as psql sees it, the server leg as the server does.
  for way in direct pgbouncer pgproxy send; do
    case "$way" in
      direct) port=$PG_PORT ;;
      pgbouncer) port=$bouncer_port ;;
      pgproxy) port=$pgproxy_port ;;
      send) port=$send_port ;;
    esac
    legs=$(psql -p "$port" -At -c '\conninfo' \
      -c "SELECT 'server leg: ' || version || ', ' || cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()" |
      sed -n 's/^SSL connection (\(protocol: [^,]*, cipher: [^,]*\).*/client leg: \1/p; /^server leg: /p' |
      paste -sd';')
    echo "  via $way: ${legs//;/; }"
  done
fi

# run_workload NAME PORT: prints tps.
run_workload() {
  local name=$1 port=$2 out="$work/$1-$2-$3.out"  # $3: which way in (and round), for the file name
  case "$name" in
    simple | prepared)
      pgbench -p "$port" -n -S -M "$name" -c "$CLIENTS" -j 2 -T "$DURATION" >"$out" 2>&1 ||
        { cat "$out" >&2; return 1; }
      grep -Eo 'tps = [0-9.]+' "$out" | head -1 | cut -d' ' -f3
      ;;
    connect)  # a new connection per transaction: tps = connections/s
      pgbench -p "$port" -n -C -S -c "$CLIENTS" -j 2 -T "$DURATION" >"$out" 2>&1 || { cat "$out" >&2; return 1; }
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
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }  # utime + stime, in clock ticks
clk_tck=$(getconf CLK_TCK)
declare -A tps runs cpu_runs conn_ms_runs
ways=(direct pgbouncer fresh pgproxy send)
workloads=(simple prepared sysbench)
[ "$TLS" = 1 ] && workloads+=(connect)
echo "upstream of both proxies: $UPSTREAM; $ROUNDS rounds, the order of the ways rotated each round" >&2
for workload in "${workloads[@]}"; do
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
          # With -C, "as fresh as pgproxy's" means a new backend per client connection, as
          # pgproxy and direct get: server_lifetime 0 uses each server connection once.
          if [ "$workload" = connect ]; then bouncer_console "SET server_lifetime = 0"; fi
          ;;
        pgproxy) port=$pgproxy_port ;;
        send) port=$send_port ;;
      esac
      case "$way" in  # the process whose CPU time the run costs
        pgbouncer | fresh) pid=$bouncer_pid ;;
        pgproxy) pid=$proxy_pid ;;
        send) pid=$send_pid ;;
        *) pid= ;;
      esac
      [ -n "$pid" ] && ticks=$(cpu_ticks "$pid")
      t=$(run_workload "$workload" "$port" "$way-$round")
      if [ "$way" = fresh ] && [ "$workload" = connect ]; then bouncer_console "SET server_lifetime = 3600"; fi
      runs[$workload,$way]="${runs[$workload,$way]:-} $t"
      if [ -n "$pid" ]; then  # CPU microseconds per transaction
        cpu_runs[$workload,$way]="${cpu_runs[$workload,$way]:-} $(awk -v d=$(($(cpu_ticks "$pid") - ticks)) \
          -v hz="$clk_tck" -v t="$t" -v s="$DURATION" 'BEGIN { printf "%.1f", d / hz * 1e6 / (t * s) }')"
      fi
      if [ "$workload" = connect ]; then
        ms=$(sed -n 's/^average connection time = \([0-9.]*\) ms/\1/p' "$work/connect-$port-$way-$round.out")
        conn_ms_runs[$way]="${conn_ms_runs[$way]:-} $ms"
        echo "  $workload round $round via $way: $t connections/s, average connection time $ms ms" >&2
      else
        echo "  $workload round $round via $way: $t tps" >&2
      fi
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
label_of() {
  case "$1" in
    simple) echo "pgbench -S -M simple" ;;
    prepared) echo "pgbench -S -M prepared" ;;
    sysbench) echo "sysbench oltp_read_write" ;;
    connect) echo "pgbench -C -S (conn/s)" ;;
  esac
}
for workload in "${workloads[@]}"; do
  label=$(label_of "$workload")
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
if [ "$TLS" = 1 ]; then
  grep -h 'exiting:' "$work/pgproxy-send.err" | sed 's/^/pgproxy --no-io-uring: /' || true
  echo "pgbench -C -S, average connection time (ms, median):" \
    "$(for way in "${ways[@]}"; do
      printf '%s %s\n' "$way" "$(tr ' ' '\n' <<<"${conn_ms_runs[$way]}" | grep . | median)"
    done | paste -sd, | sed 's/,/, /g')"
  echo
  echo "spread of the runs (min-max):"
  printf '%-26s %15s %15s %15s %15s %15s\n' workload direct pgbouncer "(fresh)" pgproxy "(send())"
  for workload in "${workloads[@]}"; do
    printf '%-26s' "$(label_of "$workload")"
    for way in "${ways[@]}"; do
      printf ' %15s' "$(tr ' ' '\n' <<<"${runs[$workload,$way]}" | grep . | sort -n |
        awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f-%.0f", lo, hi }')"
    done
    echo
  done
  echo
  echo "CPU time of the proxy process per transaction (user + system, microseconds; median):"
  printf '%-26s %10s %10s %10s %10s\n' workload pgbouncer "(fresh)" pgproxy "(send())"
  for workload in "${workloads[@]}"; do
    printf '%-26s' "$(label_of "$workload")"
    for way in pgbouncer fresh pgproxy send; do
      printf ' %10s' "$(tr ' ' '\n' <<<"${cpu_runs[$workload,$way]}" | grep . | median)"
    done
    echo
  done
  echo
  # Issue 13 sets its targets against pgbouncer with fresh server connections, as pgproxy's are
  # (with -C: each used once); the warm pool's ratio is shown beside it, marked.
  target() {  # target WORKLOAD MIN: pgproxy/pgbouncer (fresh) of the medians against MIN
    awk -v l="$(label_of "$1")" -v p="${tps[$1,pgproxy]}" -v b="${tps[$1,pgbouncer]}" -v f="${tps[$1,fresh]}" \
      -v m="$2" 'BEGIN { printf "target: %s pgproxy >= %.1fx pgbouncer (fresh): %.2fx, %s (against its warm pool: %.2fx)\n",
        l, m, p / f, (p >= m * f) ? "met" : "NOT met", p / b }'
  }
  target simple 1.1
  target prepared 1.1
  target sysbench 1.1
  target connect 1.0
  bouncer_problems=$(grep -E ' (WARNING|ERROR) ' "$work/pgbouncer.log" | sed -E 's/^.* (WARNING|ERROR) /\1 /' |
    sed -E 's/[0-9]+/N/g' | sort | uniq -c | sort -rn | sed -E 's/^ +//' || true)
  if [ -z "$bouncer_problems" ]; then
    echo "pgbouncer: no WARNING or ERROR in its log"
  else
    echo "pgbouncer: WARNING/ERROR in its log (count, message with numbers as N), most frequent first:"
    head -5 <<<"$bouncer_problems" | sed 's/^/  /'
  fi
  echo "machine: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end of the runs"
fi

# Idle connections: a fresh pgproxy, so its RSS shows only what they cost.
"$pgproxy_bin" --listen 127.0.0.1:"$pgproxy_port" --upstream "$proxy_upstream" --max-connections 2000 \
  "${proxy_tls[@]}" --sql-log "$work/sql-idle.log" --capture "$work/capture-idle.pgwcap" --stats-interval 0 \
  2>"$work/pgproxy-idle.err" &
proxy_pid=$!
for _ in $(seq 100); do psql -p "$pgproxy_port" -Atc 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.1; done
idle_target_mb=64
[ "$TLS" = 1 ] && idle_target_mb=96
python3 - "$pgproxy_port" "$proxy_pid" "$IDLE" "$TLS" "$idle_target_mb" <<'EOF'
# Opens N sessions through the proxy (StartupMessage as postgres, up to ReadyForQuery), keeps them
# open and idle, and reads the proxy's memory from /proc/PID/status. With TLS, each one first
# sends SSLRequest and, answered 'S', does the TLS handshake (no certificate check).
import socket, ssl, struct, sys, time

port, pid, n, tls, target_mb = (int(a) for a in sys.argv[1:6])
tls_context = None
if tls:
    tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls_context.check_hostname = False
    tls_context.verify_mode = ssl.CERT_NONE
ssl_request = struct.pack("!II", 8, 80877103)

def connect():
    s = socket.create_connection(("127.0.0.1", port))
    if tls_context is None:
        return s
    s.sendall(ssl_request)
    answer = s.recv(1)
    if answer != b"S":
        sys.exit(f"SSLRequest answered {answer!r}, not 'S'")
    return tls_context.wrap_socket(s)

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
        s = connect()
        s.sendall(startup)
        batch.append(s)
    for s in batch:
        until_ready(s)
    socks += batch
opened = time.monotonic() - t0
time.sleep(1)
with_idle = status()
tls_what = f"{socks[0].version()} {socks[0].cipher()[0]} " if tls else ""
print(f"idle connections: {n} complete {tls_what}sessions through pgproxy (each with its server backend) opened in "
      f"{opened:.1f} s; pgproxy VmRSS {before['VmRSS'] // 1024} MB before, "
      f"{with_idle['VmRSS'] // 1024} MB ({with_idle['VmRSS']} KiB) with them idle, "
      f"VmHWM {with_idle['VmHWM'] // 1024} MB; "
      f"{(with_idle['VmRSS'] - before['VmRSS']) / n:.1f} KiB per connection "
      f"(target < {target_mb} MB: {'met' if with_idle['VmRSS'] < target_mb * 1024 else 'NOT met'})")
for s in socks:
    s.close()
EOF
stop_pid "$proxy_pid"; proxy_pid=
[ "$stopped_rc" -eq 0 ] || echo "pgproxy (idle test) exited with status $stopped_rc" >&2
