#!/usr/bin/env bash
# pgproxy against a direct connection and pgbouncer, in one run (the bench issue 17 asks for).
#
#   bench/proxy.sh        # the full run, about 1 h 50 min: 2 upstream modes x 3 workloads x 4 client counts
#                         # x 4 ways in x 3 rounds = 288 runs of 20 s (96 min), plus connection ramps and set-up
#   CLIENTS="8 50" WORKLOADS=simple DURATION=10 bench/proxy.sh     # a quick one: 48 runs of 10 s, about 10 min
#   TLS=1 bench/proxy.sh  # TLS on every leg (docs/pgproxy-tls.md), upstream tcp only, plus pgbench -C -S
#
# Parameters (environment), with their defaults:
#   UPSTREAM="unix tcp"     how both proxies reach the server; each mode is measured in turn, pgbouncer and
#                           both pgproxy processes restarted for it (TLS=1: "tcp"; unix is refused)
#   CLIENTS="1 8 50 500"    client counts (pgbench -c N -j min(2, N); sysbench --threads N)
#   WORKLOADS="simple prepared sysbench"   pgbench -S -M simple, pgbench -S -M prepared, sysbench
#                           oltp_read_write; "connect" is pgbench -C -S (TLS=1 adds it by default)
#   ROUNDS=3 DURATION=20    rounds per cell, seconds per run
#   WARM=0                  WARM=1 adds pgbouncer with a warm pool, an extra (marked) column
#   ADMISSION=              ADMISSION=N adds pgbouncer with default_pool_size N, an extra (marked) column,
#                           at the client counts above N, where it queues the surplus clients
#   REUSE=0                 REUSE=1 adds two extra (marked) ways: two pgproxy processes with --reuse-port on
#                           one port ("pgproxy x2"), and two pgbouncer processes with so_reuseport = 1 on
#                           one port ("pgbouncer x2", each filled to the run's client count beforehand,
#                           since the kernel, not pgbouncer, decides which process gets which client);
#                           shown apart, beside one pgproxy; HELD's sessions do not go through them
#   HELD=0                  HELD=N holds N idle sessions open through every way in (direct, pgbouncer,
#                           both pgproxy processes; database "held") while the runs go on, as a pooler or
#                           an application server keeps connections it rarely uses: what a round of each
#                           proxy's loop costs with many sessions open and few busy
#   SCALE=10 IDLE=1000 TLS=0 TLS_KEY=rsa BUILD_DIR=build/release
#
# 1. Once: a throwaway PostgreSQL (scripts/lib/pg.sh, max_connections = IDLE + 2 x the largest client
#    count + 100), `pgbench -i -s SCALE`, and sysbench's oltp tables (8 x 10000 rows, prepared directly
#    against the server) in database sbtest; pgproxy is configured and built in BUILD_DIR if needed.
# 2. For each upstream mode: Debian's pgbouncer in session mode (trust auth, no logging; pool
#    default_pool_size = largest client count + 10 and max_client_conn = largest + 100, so every
#    client gets its own server session, as through pgproxy), pgproxy with the SQL log and the
#    capture on (files in the temp dir), and a second pgproxy, the same but with --no-io-uring (one
#    send() per socket, as where io_uring is not allowed). Clients always connect over TCP; both
#    proxies reach the server over the mode's way (unix: the server's socket; tcp: 127.0.0.1).
# 3. The ways in: direct; pgbouncer "fresh": its server connections dropped (KILL/RESUME on its
#    console) after each of its runs, and before a run as many new ones opened as the run has clients
#    (bouncer_fill), so the run starts with its own new backends, all of them up, as direct and pgproxy
#    runs do (with -C: server_lifetime = 0, a new backend per client connection, as through pgproxy);
#    pgproxy; pgproxy --no-io-uring ("send()"); and the extras asked for (WARM, ADMISSION). Before
#    every run the script waits until the previous run's backends have exited. For each mode, workload and client count: ROUNDS rounds
#    of DURATION seconds, the order of the ways rotated each round (this 2-core VM drifts by tens of
#    percent from one run to the next). Each run is printed as it happens (stderr): tps, the client's
#    average latency (pgbench's "latency average", sysbench's "avg" latency), for the proxies their
#    CPU time per transaction (utime + stime of /proc/PID/stat, all threads) and context switches
#    per transaction (voluntary + involuntary, summed over /proc/PID/task/*/status) and the time their
#    threads spent runnable but waiting for a CPU (/proc/PID/task/*/schedstat), per transaction
#    meaning per transaction the client reports having processed; for every way, the whole machine's
#    busy, idle and steal time per transaction (/proc/stat); for pgbouncer, how many server
#    connections it held after the run.
# 4. The summary, per upstream mode: a throughput table (median tps of each way, the ratios of the
#    medians pgproxy/pgbouncer, pgproxy/direct, send()/pgproxy, the spread min-max of pgproxy and
#    pgbouncer), a cost table (median latency, CPU per transaction, context switches per transaction,
#    pgbouncer's server connections), where the machine's time goes (busy and idle µs per transaction of
#    each way, each proxy's wait for a CPU), the extras if any; pgproxy's SQL log checked against its
#    "exiting:" line, capture size, exit status, peak RSS; then the targets, each met or NOT met.
# 5. Memory with idle connections: a fresh pgproxy (first upstream mode), IDLE complete sessions
#    opened through it by a small python3 client (StartupMessage, authentication, ReadyForQuery;
#    each one also holds a real server backend), then left idle; prints pgproxy's VmRSS before and
#    with them.
# Targets (issue 17; medians, SQL log and capture on, against pgbouncer in session mode with fresh
# backends): pgbench -S simple and prepared, sysbench oltp_read_write: pgproxy >= 1.10x pgbouncer's
# tps at 8, 50 and 500 clients with both upstream modes, >= 0.85x direct at 50 clients; at 1 client
# pgproxy's average latency <= pgbouncer's; pgproxy's CPU per transaction <= pgbouncer's at every
# client count; the fallback without io_uring within 10% of the io_uring path (send() >= 0.90x
# pgproxy). Issue 3's: RSS with 1000 idle connections < 64 MB. Only the cells measured are judged.
#
# TLS=1: a throwaway CA, server and proxy certificates (SAN DNS:localhost, IP:127.0.0.1; keys 0600;
#    TLS_KEY=rsa, 2048 bits, the default, or TLS_KEY=ec, P-256) made with the openssl tool in the temp
#    dir. PostgreSQL runs with ssl=on and a pg_hba that takes TCP only over TLS (hostssl trust,
#    hostnossl reject). Both proxies reach it over TCP (there is no TLS over a Unix socket) with TLS:
#    pgbouncer with client_tls_sslmode=require (the proxy certificate) and server_tls_sslmode=require;
#    pgproxy (both) with --tls-cert/--tls-key and --upstream-sslmode require, SQL log and capture on
#    as above. Every client (pgbench, sysbench, psql; direct ones too) runs with PGSSLMODE=require.
#    sysbench 1.0's pgsql driver has no TLS option, but it connects with libpq's PQsetdbLogin, which
#    takes PGSSLMODE from the environment like any other libpq client (and the server's pg_hba refuses
#    it otherwise). Before the runs, the protocol and cipher of each way's client leg (psql's
#    \conninfo) and server leg (pg_stat_ssl) are printed. The workloads are those above plus pgbench
#    -C -S: a new connection, TLS handshake(s) included, per transaction, so its tps are connections
#    per second (pgbench's "average connection time" is printed too). The idle sessions each do
#    SSLRequest and a TLS handshake (python's ssl, no verification) before their StartupMessage.
# Targets with TLS (issue 13, against pgbouncer with fresh server connections; with WARM=1 the warm
# pool's ratio beside): pgproxy >= 1.1x pgbouncer tps on pgbench -S simple and prepared and on sysbench
# oltp_read_write; pgbench -C connections/s >= pgbouncer's; RSS with 1000 idle TLS sessions < 96 MB.
#
# A full run writes several GB of SQL log and capture to the temp dir (/tmp), removed on exit.
# Everything listens on 127.0.0.1 only; every process started here is stopped on exit. A run that
# fails is shown and left out of the medians, the others go on; the script then exits with status 1.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-1 8 50 500}
TLS=${TLS:-0}
TLS_KEY=${TLS_KEY:-rsa}
if [ "$TLS" = 1 ]; then
  UPSTREAM=${UPSTREAM:-tcp}
  WORKLOADS=${WORKLOADS:-simple prepared sysbench connect}
else
  UPSTREAM=${UPSTREAM:-unix tcp}
  WORKLOADS=${WORKLOADS:-simple prepared sysbench}
fi
WARM=${WARM:-0}
ADMISSION=${ADMISSION:-}
REUSE=${REUSE:-0}
HELD=${HELD:-0}
SCALE=${SCALE:-10}
IDLE=${IDLE:-1000}
build_dir=${BUILD_DIR:-build/release}

# Everything is checked before anything is built or started.
usage_error() { echo "bench/proxy.sh: $*" >&2; exit 2; }
is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
read -ra modes <<<"$UPSTREAM"
read -ra client_counts <<<"$CLIENTS"
read -ra workloads <<<"$WORKLOADS"
[ ${#modes[@]} -gt 0 ] || usage_error "UPSTREAM is empty"
[ ${#client_counts[@]} -gt 0 ] || usage_error "CLIENTS is empty"
[ ${#workloads[@]} -gt 0 ] || usage_error "WORKLOADS is empty"
for mode in "${modes[@]}"; do
  case "$mode" in
    unix) [ "$TLS" = 1 ] && usage_error "TLS=1 needs UPSTREAM=tcp: there is no TLS over a Unix socket" ;;
    tcp) ;;
    *) usage_error "UPSTREAM: '$mode' is neither unix nor tcp" ;;
  esac
done
max_clients=0
for clients in "${client_counts[@]}"; do
  is_count "$clients" || usage_error "CLIENTS: '$clients' is not a positive number"
  [ "$clients" -gt "$max_clients" ] && max_clients=$clients
done
for workload in "${workloads[@]}"; do
  case "$workload" in
    simple | prepared | sysbench | connect) ;;
    *) usage_error "WORKLOADS: '$workload' is not one of simple, prepared, sysbench, connect" ;;
  esac
done
for var in DURATION ROUNDS SCALE IDLE; do is_count "${!var}" || usage_error "$var must be a positive number"; done
case "$WARM" in 0 | 1) ;; *) usage_error "WARM must be 0 or 1" ;; esac
case "$REUSE" in 0 | 1) ;; *) usage_error "REUSE must be 0 or 1" ;; esac
[ "$REUSE" = 1 ] && [ "$TLS" = 1 ] && usage_error "REUSE=1 is not measured with TLS=1"
[ "$HELD" = 0 ] || is_count "$HELD" || usage_error "HELD must be 0 or a positive number"
[ -z "$ADMISSION" ] || is_count "$ADMISSION" || usage_error "ADMISSION must be empty or a positive number"
case "$TLS" in 0 | 1) ;; *) usage_error "TLS must be 0 or 1" ;; esac
case "$TLS_KEY" in
  rsa) newkey=(-newkey rsa:2048) ;;
  ec) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
  *) usage_error "TLS_KEY must be rsa or ec" ;;
esac
if [ "$TLS" = 1 ] && ! command -v openssl >/dev/null; then
  echo "TLS=1 needs the openssl tool (apt-get install openssl)" >&2
  exit 1
fi

# The ways in, in the order of the first round. pgbouncer "fresh" is the pgbouncer figure the
# targets use; "warm" and "admission" are extras, shown apart and marked.
ways=(direct fresh pgproxy send)
[ "$WARM" = 1 ] && ways+=(warm)
[ -n "$ADMISSION" ] && ways+=(admission)
[ "$REUSE" = 1 ] && ways+=(pair bpair)
runs_in_cell() {  # runs_in_cell CLIENTS: how many ways are measured at that client count
  local n=${#ways[@]}
  [ -n "$ADMISSION" ] && [ "$1" -le "$ADMISSION" ] && n=$((n - 1))
  echo "$n"
}
planned_runs=0
for clients in "${client_counts[@]}"; do planned_runs=$((planned_runs + $(runs_in_cell "$clients"))); done
planned_runs=$((planned_runs * ${#modes[@]} * ${#workloads[@]} * ROUNDS))
bouncer_pool=$((max_clients + 10))        # every client its own server session, as through pgproxy
[ "$HELD" -ge "$max_clients" ] && bouncer_pool=$((HELD + 10))  # the held sessions' own pool, likewise
bouncer_max_clients=$((max_clients + HELD + 100))
# pgbouncer's server connections are dropped after each of its runs, so at most one way's backends
# (plus those of the previous run that are still exiting) are open at a time; the idle test runs alone.
# HELD: that many idle backends per way in, all the time.
pg_max_connections=$((IDLE + 2 * max_clients + 4 * HELD + 100))
[ "$REUSE" = 1 ] && pg_max_connections=$((pg_max_connections + max_clients))  # bpair: two pools of max_clients
proxy_max_connections=2000
for n in $((IDLE + 100)) $((max_clients + HELD + 100)); do
  [ "$n" -gt "$proxy_max_connections" ] && proxy_max_connections=$n
done

scripts/install-deps.sh  # sysbench, pgbouncer, the PostgreSQL server and clients (apt-get --no-upgrade)
source scripts/lib/build.sh
bench_build "$build_dir" release pgproxy
pgproxy_bin="$build_dir/tools/pgproxy/pgproxy"

source scripts/lib/pg.sh
work=$(mktemp -d /tmp/pgwire-proxy-bench.XXXXXX)
held_pids=()  # HELD: the processes holding idle sessions open
proxy_pid=
send_pid=
bouncer_pid=
pair_pids=()   # REUSE: the two pgproxy --reuse-port processes
bpair_pids=()  # REUSE: the two pgbouncer so_reuseport processes
stop_pid() {  # stop_pid PID: SIGTERM, wait; the exit status goes to $stopped_rc
  stopped_rc=0
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || stopped_rc=$?
}
cleanup() {
  set +e  # a failing kill or wait must not skip the rest
  for pid in "${held_pids[@]}"; do kill "$pid" 2>/dev/null; done
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null && wait "$proxy_pid" 2>/dev/null
  [ -n "$send_pid" ] && kill "$send_pid" 2>/dev/null && wait "$send_pid" 2>/dev/null
  [ -n "$bouncer_pid" ] && kill "$bouncer_pid" 2>/dev/null && wait "$bouncer_pid" 2>/dev/null
  for pid in "${pair_pids[@]}" "${bpair_pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  pg_stop
  rm -rf "$work"
}
trap cleanup EXIT

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- 2>/dev/null || commit+=" (with uncommitted changes)"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "parameters: UPSTREAM=\"${modes[*]}\" CLIENTS=\"${client_counts[*]}\" WORKLOADS=\"${workloads[*]}\"" \
  "ROUNDS=$ROUNDS DURATION=$DURATION WARM=$WARM ADMISSION=${ADMISSION:-none} REUSE=$REUSE HELD=$HELD TLS=$TLS SCALE=$SCALE" \
  "IDLE=$IDLE"
echo "versions: $(pgbouncer --version 2>&1 | sed -n 1p), pgproxy at commit $commit" \
  "($pgproxy_bin), $(pgbench --version), $(sysbench --version)"
echo "pgbouncer: default_pool_size $bouncer_pool, max_client_conn $bouncer_max_clients;" \
  "PostgreSQL max_connections $pg_max_connections; pgproxy --max-connections $proxy_max_connections"
echo "plan: $planned_runs runs of ${DURATION}s, $((planned_runs * DURATION / 60)) min of runs" \
  "(plus connection ramps, warm-ups and set-up)"
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
pg_start max_connections="$pg_max_connections" shared_buffers=256MB "${pg_tls[@]}"
[ "$TLS" = 1 ] && export PGSSLMODE=require  # every libpq client from here on: pgbench, sysbench, psql
pgbench -i -q -s "$SCALE" >/dev/null 2>&1
createdb sbtest
createdb held  # HELD's idle sessions: apart, so that pgbouncer's KILL of the others leaves them
sb_common=(--db-driver=pgsql --pgsql-host=127.0.0.1 --pgsql-user=postgres --pgsql-password= --pgsql-db=sbtest
           --tables=8 --table-size=10000)
sysbench oltp_read_write "${sb_common[@]}" --pgsql-port="$PG_PORT" --threads=4 prepare >"$work/sb-prepare.out" 2>&1 ||
  { cat "$work/sb-prepare.out" >&2; exit 1; }
psql -q -d sbtest -c 'VACUUM ANALYZE' && psql -q -c 'VACUUM ANALYZE'
echo 'SELECT 1;' >"$work/select1.sql"  # bouncer_fill's clients

upstream_of() {  # upstream_of MODE: pgproxy's --upstream for it
  case "$1" in
    unix) echo "$PG_DIR:$PG_PORT" ;;  # the server's socket directory
    tcp) echo "127.0.0.1:$PG_PORT" ;;
  esac
}
start_pgproxy() {  # start_pgproxy PORT UPSTREAM NAME [OPTION...]: a pgproxy, SQL log and capture in $work/NAME.*
  local port=$1 upstream=$2 name=$3
  shift 3
  "$pgproxy_bin" --listen 127.0.0.1:"$port" --upstream "$upstream" --max-connections "$proxy_max_connections" \
    "$@" "${proxy_tls[@]}" --sql-log "$work/$name.sql.log" --capture "$work/$name.pgwcap" --stats-interval 0 \
    2>"$work/$name.err" &
}
wait_ready() {  # wait_ready PORT [HOST]: until a query goes through (10 s at most)
  local host=${2:-$PGHOST}
  for _ in $(seq 100); do psql -h "$host" -p "$1" -Atc 'SELECT 1' >/dev/null 2>&1 && return 0; sleep 0.1; done
  psql -h "$host" -p "$1" -Atc 'SELECT 1' >/dev/null
}

# start_ways MODE: pgbouncer and both pgproxy processes, reaching the server over MODE (unix or
# tcp); sets bouncer_port/pid, pgproxy_port/proxy_pid, send_port/send_pid. Their files: $work/MODE/.
start_ways() {
  local mode=$1 dir=$work/$1 bouncer_host way port legs i
  mkdir "$dir"
  case "$mode" in
    unix) bouncer_host=$PG_DIR ;;
    tcp) bouncer_host=127.0.0.1 ;;
  esac
  # pgbouncer: session pooling, trust (the user must still be listed in auth_file), nothing logged,
  # the two databases listed so that KILL/RESUME work on them before their first client.
  # It refuses to run as root: -u switches to the postgres user, which must read its files.
  bouncer_port=$(free_port)
  printf '"postgres" ""\n' >"$dir/userlist.txt"
  cat >"$dir/pgbouncer.ini" <<EOF
[databases]
postgres = host=$bouncer_host port=$PG_PORT
sbtest = host=$bouncer_host port=$PG_PORT
held = host=$bouncer_host port=$PG_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = postgres
pool_mode = session
max_client_conn = $bouncer_max_clients
default_pool_size = $bouncer_pool
max_db_connections = 0
ignore_startup_parameters = extra_float_digits,options
log_connections = 0
log_disconnections = 0
logfile = $dir/pgbouncer.log
pidfile =
EOF
  if [ "$TLS" = 1 ]; then
    printf "%s\n" "client_tls_sslmode = require" "client_tls_cert_file = $tls/proxy.crt" \
      "client_tls_key_file = $tls/proxy.key" "server_tls_sslmode = require" >>"$dir/pgbouncer.ini"
  fi
  if [ "$REUSE" = 1 ]; then
    # Two more, sharing one port (so_reuseport); each with its own Unix socket, through which its
    # console is reached and its pool filled (the shared port reaches either).
    bpair_port=$(free_port)
    for i in 1 2; do
      mkdir "$dir/b$i"
      sed -e "s|^listen_port = .*|listen_port = $bpair_port|" -e "s|^unix_socket_dir =.*|unix_socket_dir = $dir/b$i|" \
        -e "s|^logfile = .*|logfile = $dir/b$i/pgbouncer.log|" "$dir/pgbouncer.ini" >"$dir/b$i/pgbouncer.ini"
      echo "so_reuseport = 1" >>"$dir/b$i/pgbouncer.ini"
    done
  fi
  local bouncer_user=()
  if [ "$(id -u)" -eq 0 ]; then
    chown -R postgres: "$work"
    bouncer_user=(-u postgres)
  fi
  pgbouncer "${bouncer_user[@]}" "$dir/pgbouncer.ini" >"$dir/pgbouncer.out" 2>&1 &
  bouncer_pid=$!
  pgproxy_port=$(free_port)
  start_pgproxy "$pgproxy_port" "$(upstream_of "$mode")" "$mode/pgproxy"
  proxy_pid=$!
  send_port=$(free_port)
  start_pgproxy "$send_port" "$(upstream_of "$mode")" "$mode/send" --no-io-uring
  send_pid=$!
  for port in "$bouncer_port" "$pgproxy_port" "$send_port"; do
    wait_ready "$port" || { cat "$dir"/pgbouncer.{out,log} "$dir"/*.err >&2; exit 1; }
  done
  if [ "$REUSE" = 1 ]; then
    pair_port=$(free_port)
    pair_pids=()
    bpair_pids=()
    for i in 1 2; do
      start_pgproxy "$pair_port" "$(upstream_of "$mode")" "$mode/pair$i" --reuse-port
      pair_pids+=($!)
      pgbouncer "${bouncer_user[@]}" "$dir/b$i/pgbouncer.ini" >"$dir/b$i/pgbouncer.out" 2>&1 &
      bpair_pids+=($!)
    done
    for i in 1 2; do
      wait_ready "$bpair_port" "$dir/b$i" || { cat "$dir/b$i"/pgbouncer.{out,log} >&2; exit 1; }
      for _ in $(seq 100); do grep -q '^.*listening on' "$dir/pair$i.err" && break; sleep 0.1; done
      grep -q 'listening on' "$dir/pair$i.err" || { cat "$dir/pair$i.err" >&2; exit 1; }
    done
    wait_ready "$pair_port" || { cat "$dir"/pair*.err >&2; exit 1; }
  fi
  echo "upstream $mode: pgbouncer reaches the server at host=$bouncer_host, both pgproxy processes at" \
    "$(upstream_of "$mode")" >&2
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
  bouncer_drop  # the server connections the checks above left in its pool
  if [ "$REUSE" = 1 ]; then bouncer_drop "$dir/b1"; bouncer_drop "$dir/b2"; fi
  if [ "$HELD" -gt 0 ]; then
    # HELD idle sessions through every way in, until stop_ways.
    held_pids=()
    for port in "$PG_PORT" "$bouncer_port" "$pgproxy_port" "$send_port"; do
      python3 "$work/sessions.py" "$port" "$HELD" "$TLS" >"$dir/held-$port.out" 2>&1 &
      held_pids+=($!)
    done
    for port in "$PG_PORT" "$bouncer_port" "$pgproxy_port" "$send_port"; do
      for _ in $(seq 600); do grep -q '^held' "$dir/held-$port.out" && break; sleep 0.1; done
      grep -q '^held' "$dir/held-$port.out" || { cat "$dir/held-$port.out" >&2; exit 1; }
    done
    echo "upstream $mode: $HELD idle sessions held open through each way in" >&2
  fi
}

# sessions.py: opens complete sessions as postgres (StartupMessage, authentication, up to
# ReadyForQuery), 50 at a time; with TLS each one first sends SSLRequest and, answered 'S', does
# the TLS handshake (no certificate check). The idle-memory test below imports it; as a program,
# `sessions.py PORT N TLS` opens N sessions to database "held", says "held N", and keeps them
# open and idle until it is killed (HELD).
cat >"$work/sessions.py" <<'EOF'
import signal, socket, ssl, struct, sys


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


def open_sessions(port, n, tls, database, application_name):
    context = None
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    params = b"user\0postgres\0database\0%s\0application_name\0%s\0\0" % (database.encode(),
                                                                             application_name.encode())
    startup = struct.pack("!II", 8 + len(params), 196608) + params
    socks = []
    while len(socks) < n:
        batch = []
        for _ in range(min(50, n - len(socks))):
            s = socket.create_connection(("127.0.0.1", port))
            if context is not None:
                s.sendall(struct.pack("!II", 8, 80877103))
                answer = s.recv(1)
                if answer != b"S":
                    sys.exit(f"SSLRequest answered {answer!r}, not 'S'")
                s = context.wrap_socket(s)
            s.sendall(startup)
            batch.append(s)
        for s in batch:
            until_ready(s)
        socks += batch
    return socks


if __name__ == "__main__":
    port, n, tls = (int(a) for a in sys.argv[1:4])
    held = open_sessions(port, n, tls, "held", "held")
    print("held", n, flush=True)
    signal.pause()
EOF

declare -A notes  # notes[MODE]: what stop_ways found, for the summary
# check_sql_log NAME LABEL: the SQL log's line count against what pgproxy's "exiting:" line says it wrote.
check_sql_log() {
  local name=$1 label=$2 lines written lost exiting
  lines=$(wc -l <"$work/$name.sql.log")
  exiting=$(grep -h 'exiting:' "$work/$name.err" | tail -1 || true)
  written=$(sed -n 's/.*lines_written=\([0-9]*\).*/\1/p' <<<"$exiting")
  lost=$(sed -n 's/.*lost_lines=\([0-9]*\).*/\1/p' <<<"$exiting")
  if [ -z "$exiting" ]; then
    echo "$label: SQL log $lines lines; no 'exiting:' line from it: NOT checked"
  elif [ "$written" = "$lines" ] && [ "$lost" = 0 ]; then
    echo "$label: SQL log $lines lines = lines_written, none lost: ok"
  else
    echo "$label: SQL log $lines lines, but lines_written=$written lost_lines=$lost: MISMATCH"
  fi
  [ -n "$exiting" ] && echo "$label: ${exiting#*exiting: }"
  return 0
}
stop_ways() {  # stop_ways MODE: stops what start_ways started; what they leave behind goes to notes[MODE]
  local mode=$1 dir=$work/$1 hwm send_hwm proxy_rc send_rc problems pid
  for pid in "${held_pids[@]}"; do { kill "$pid" && wait "$pid"; } 2>/dev/null || true; done  # wait: 143
  held_pids=()
  hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$proxy_pid/status" 2>/dev/null || true)  # none if it died
  send_hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$send_pid/status" 2>/dev/null || true)
  stop_pid "$proxy_pid"; proxy_rc=$stopped_rc; proxy_pid=
  stop_pid "$send_pid"; send_rc=$stopped_rc; send_pid=
  stop_pid "$bouncer_pid"; bouncer_pid=
  local pair_notes=() i=0
  for pid in "${pair_pids[@]}"; do
    i=$((i + 1))
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
    stop_pid "$pid"
    pair_notes+=("pgproxy x2, process $i: capture $(($(stat -c %s "$dir/pair$i.pgwcap") >> 20)) MB, exit status $stopped_rc, peak RSS $((hwm / 1024)) MB")
    pair_notes+=("$(check_sql_log "$mode/pair$i" "pgproxy x2, process $i")")
  done
  for pid in "${bpair_pids[@]}"; do stop_pid "$pid"; done
  pair_pids=()
  bpair_pids=()
  problems=$(grep -E ' (WARNING|ERROR) ' "$dir/pgbouncer.log" | sed -E 's/^.* (WARNING|ERROR) /\1 /' |
    sed -E 's/[0-9]+/N/g' | sort | uniq -c | sort -rn | sed -E 's/^ +//' || true)
  notes[$mode]=$(
    echo "pgproxy: capture $(($(stat -c %s "$dir/pgproxy.pgwcap") >> 20)) MB, exit status $proxy_rc," \
      "peak RSS (VmHWM) over all its runs $((hwm / 1024)) MB ($hwm KiB)"
    check_sql_log "$mode/pgproxy" pgproxy
    echo "pgproxy --no-io-uring: capture $(($(stat -c %s "$dir/send.pgwcap") >> 20)) MB, exit status $send_rc," \
      "peak RSS $((send_hwm / 1024)) MB"
    check_sql_log "$mode/send" "pgproxy --no-io-uring"
    [ ${#pair_notes[@]} -eq 0 ] || printf '%s\n' "${pair_notes[@]}"
    if [ -z "$problems" ]; then
      echo "pgbouncer: no WARNING or ERROR in its log"
    else
      echo "pgbouncer: WARNING/ERROR in its log (count, message with numbers as N), most frequent first:"
      head -5 <<<"$problems" | sed 's/^/  /'
    fi
  )
  # Each run's output file stays until the end (sysbench's ignored errors); the SQL logs and
  # captures go now, they are the bulk.
  rm -f "$dir"/*.sql.log "$dir"/*.pgwcap
}

# The console functions take the pgbouncer to talk to as an optional last argument: empty for the
# one on $bouncer_port, or the Unix socket directory of one of REUSE's pair (on $bpair_port).
bouncer_at() {  # bouncer_at [SOCKET_DIR]: psql's -h and -p for it
  if [ -n "${1:-}" ]; then echo "-h $1 -p $bpair_port"; else echo "-p $bouncer_port"; fi
}
bouncer_console() {  # bouncer_console COMMAND [SOCKET_DIR]
  # shellcheck disable=SC2046  # bouncer_at's words are meant to split
  psql $(bouncer_at "${2:-}") -d pgbouncer -qc "$1" >/dev/null
}
bouncer_drop() {  # bouncer_drop [SOCKET_DIR]: closes all its server connections (KILL pauses the database; RESUME undoes that)
  local db
  for db in postgres sbtest; do bouncer_console "KILL $db" "${1:-}"; bouncer_console "RESUME $db" "${1:-}"; done
}
bouncer_servers() {  # bouncer_servers [SOCKET_DIR]
  # shellcheck disable=SC2046
  psql $(bouncer_at "${1:-}") -d pgbouncer -Atc 'SHOW SERVERS' | wc -l
}
# bouncer_fill DATABASE N: pgbouncer opens N new server connections for DATABASE before a "fresh" run.
# pgbouncer opens server connections one after another (about 50 a second here), so a run that
# started with an empty pool would spend its first seconds with fewer backends than clients, the
# surplus clients queued: admission control, which the comparison must not have (issue 17). pgproxy
# opens each client's backend while the client connects, before pgbench's clock starts; this gives
# pgbouncer the same start. N clients hold a session each (pgbench, one SELECT 1 per client and
# second) until pgbouncer holds N server connections, then leave; the backends have run nothing but
# SELECT 1 and pgbouncer's DISCARD ALL. Returns 1 if the pool did not fill in 60 s.
# bouncer_fill DATABASE N SOCKET_DIR: the same for one of REUSE's pair.
bouncer_fill() {
  local db=$1 n=$2 at holder have=0 i
  at=$(bouncer_at "${3:-}")
  # shellcheck disable=SC2086  # $at: psql's -h and -p, meant to split
  pgbench $at -n -f "$work/select1.sql" -c "$n" -j "$(($n < 2 ? $n : 2))" -R "$n" -T 90 "$db" \
    >"$work/fill.out" 2>&1 &
  holder=$!
  for i in $(seq 600); do
    # shellcheck disable=SC2086
    have=$(psql $at -d pgbouncer -Atc 'SHOW SERVERS' | awk -F'|' -v d="$db" '$3 == d' | wc -l)
    [ "$have" -ge "$n" ] && break
    sleep 0.1
  done
  # SIGTERM: a background job of a non-interactive shell ignores SIGINT, so -INT left the holder
  # running its whole -T 90 (and the wait below waiting for it) before every "fresh" run.
  kill -TERM "$holder" 2>/dev/null
  wait "$holder" 2>/dev/null || true
  # until its clients are gone and every server connection is back in the pool
  for i in $(seq 100); do
    # shellcheck disable=SC2086
    [ "$(psql $at -d pgbouncer -Atc 'SHOW CLIENTS' | awk -F'|' -v d="$db" '$3 == d' | wc -l)" = 0 ] && break
    sleep 0.1
  done
  [ "$have" -ge "$n" ]
}
# settle: waits (10 s at most) until the server has no client backend but this one, i.e. until the
# backends of the previous run have exited, so that no run shares the CPUs with them.
settle() {
  local n
  for _ in $(seq 100); do
    n=$(psql -p "$PG_PORT" -Atc "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'
      AND datname IS DISTINCT FROM 'held'")
    [ "$n" -le 1 ] && return 0
    sleep 0.1
  done
  echo "  (still $((n - 1)) backends of the previous run after 10 s)" >&2
}
# The per-process figures take one PID or several (REUSE's pairs), and sum over them.
cpu_ticks() {  # utime + stime of all threads, in clock ticks
  local pid
  for pid in "$@"; do cat "/proc/$pid/stat"; done | awk '{ n += $14 + $15 } END { print n + 0 }'
}
ctx_switches() {  # voluntary + involuntary context switches, summed over the processes' threads
  local pid
  for pid in "$@"; do cat /proc/"$pid"/task/*/status 2>/dev/null || true; done |
    awk '/^(non)?voluntary_ctxt_switches:/ { n += $2 } END { print n + 0 }'
}
# machine_ticks: the whole machine's busy (user + nice + system + irq + softirq), idle (idle + iowait) and
# steal clock ticks so far, from /proc/stat's "cpu" line
machine_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $5 + $6, $9 + 0; exit }' /proc/stat; }
# rq_wait_us PID...: the time the processes' threads have spent runnable but waiting for a CPU, in µs
# (the second field of /proc/PID/task/*/schedstat, in ns)
rq_wait_us() {
  local pid
  for pid in "$@"; do cat /proc/"$pid"/task/*/schedstat 2>/dev/null || true; done |
    awk '{ n += $2 } END { printf "%d\n", n / 1000 }'
}
clk_tck=$(getconf CLK_TCK)

# run_workload WORKLOAD CLIENTS PORT SECONDS OUT: one run, its output in OUT; sets r_tps, r_txns (the
# transactions the client reports processed), r_lat (its average latency, ms) and r_conn_ms (pgbench
# -C's average connection time), r_init_ms (pgbench's time to connect all its clients, within the
# run's SECONDS), r_status (the client's exit status); fails when the client fails or its figures are missing.
run_workload() {
  local workload=$1 clients=$2 port=$3 seconds=$4 out=$5 threads=$(($2 < 2 ? $2 : 2))  # pgbench refuses -j > -c
  local how=()
  r_tps='' r_txns='' r_lat='' r_conn_ms='' r_init_ms='' r_status=0
  case "$workload" in
    simple | prepared | connect)
      if [ "$workload" = connect ]; then how=(-C); else how=(-M "$workload"); fi
      pgbench -p "$port" -n -S "${how[@]}" -c "$clients" -j "$threads" -T "$seconds" >"$out" 2>&1 || r_status=$?
      r_tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out" | head -1)
      r_txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
      r_lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$out")
      r_conn_ms=$(sed -n 's/^average connection time = \([0-9.]*\) ms.*/\1/p' "$out")
      r_init_ms=$(sed -n 's/^initial connection time = \([0-9.]*\) ms.*/\1/p' "$out")
      ;;
    sysbench)
      sysbench oltp_read_write "${sb_common[@]}" --pgsql-port="$port" --threads="$clients" --time="$seconds" \
        --report-interval=0 run >"$out" 2>&1 || r_status=$?
      r_txns=$(awk '$1 == "transactions:" { print $2; exit }' "$out")
      r_tps=$(awk '$1 == "transactions:" { gsub(/\(/, "", $3); print $3; exit }' "$out")
      r_lat=$(awk '/Latency \(ms\):/ { f = 1 } f && $1 == "avg:" { print $2; exit }' "$out")
      ;;
  esac
  [ "$r_status" = 0 ] && [ -n "$r_tps" ] && [ -n "$r_lat" ] && [ -n "$r_txns" ] && [ "$r_txns" -gt 0 ]
}

count_word() { if [ "$1" = 1 ]; then echo "1 client"; else echo "$1 clients"; fi; }
way_name() {
  case "$1" in
    direct) echo direct ;;
    fresh) echo "pgbouncer (fresh)" ;;
    pgproxy) echo pgproxy ;;
    send) echo "pgproxy --no-io-uring" ;;
    warm) echo "pgbouncer (warm pool, extra)" ;;
    pair) echo "pgproxy x2 (--reuse-port, extra)" ;;
    bpair) echo "pgbouncer x2 (so_reuseport, extra)" ;;
    admission) echo "pgbouncer pool $ADMISSION (admission-controlled, extra)" ;;
  esac
}
# Every run's figures, keyed MODE,WORKLOAD,CLIENTS,WAY, as space-separated lists (one per round).
declare -A tps_runs lat_runs cpu_runs ctx_runs srv_runs conn_runs busy_runs idle_runs wait_runs
failed=()
# measure MODE WORKLOAD CLIENTS WAY ROUND: one measured run through WAY, recorded and printed.
measure() {
  local mode=$1 workload=$2 clients=$3 way=$4 round=$5 port pids=() ticks ctx line detail='' unit cpu ctxn srv i
  local mach0 mach1 wait0 busy idle steal waitn
  local key="$1,$2,$3,$4" out="$work/$1/$2-c$3-$4-$5.out"
  case "$way" in
    direct) port=$PG_PORT ;;
    fresh | warm | admission) port=$bouncer_port; pids=("$bouncer_pid") ;;
    pgproxy) port=$pgproxy_port; pids=("$proxy_pid") ;;
    pair) port=$pair_port; pids=("${pair_pids[@]}") ;;
    bpair) port=$bpair_port; pids=("${bpair_pids[@]}") ;;
    send) port=$send_port; pids=("$send_pid") ;;
  esac
  settle
  case "$way" in
    fresh)  # its own new backends, as direct and pgproxy runs, all open before the run; with -C, each one used once
      if [ "$workload" = connect ]; then
        bouncer_console "SET server_lifetime = 0"
      else
        bouncer_fill "$(db_of "$workload")" "$clients" ||
          echo "  (pgbouncer's pool did not reach $clients server connections in 60 s)" >&2
      fi
      ;;
    warm)  # a steady state: the pool holds backends warmed by a short run of the same workload
      run_workload "$workload" "$clients" "$port" 3 "$out.warm-up" || echo "  (the warm-up run failed)" >&2
      ;;
    bpair)  # each of the two filled to the run's client count: the kernel spreads the clients by a hash
      for i in 1 2; do
        bouncer_fill "$(db_of "$workload")" "$clients" "$work/$mode/b$i" ||
          echo "  (pgbouncer x2, process $i: its pool did not reach $clients server connections in 60 s)" >&2
      done
      ;;
    admission)  # fewer server sessions than clients: pgbouncer queues the surplus clients
      bouncer_console "SET default_pool_size = $ADMISSION"
      ;;
  esac
  if [ ${#pids[@]} -gt 0 ]; then
    ticks=$(cpu_ticks "${pids[@]}")
    ctx=$(ctx_switches "${pids[@]}")
    wait0=$(rq_wait_us "${pids[@]}")
  fi
  read -ra mach0 < <(machine_ticks)
  line="  [$mode] $(label_of "$workload"), $(count_word "$clients"), round $round, $(way_name "$way"):"
  if ! run_workload "$workload" "$clients" "$port" "$DURATION" "$out"; then
    failed+=("[$mode] $(label_of "$workload"), $(count_word "$clients"), round $round, $(way_name "$way")")
    line+=" FAILED (exit status $r_status, ${r_txns:-no} transactions)"
    detail=$'\n'"    its errors and the end of its output:"
    detail+=$'\n'$( (grep -m 5 -iE 'error|abort|fatal|could not' "$out"; tail -n 4 "$out") | sed 's/^/    /')
  else
    tps_runs[$key]+=" $r_tps"
    lat_runs[$key]+=" $r_lat"
    unit=tps
    [ "$workload" = connect ] && unit=connections/s
    line+=" $r_tps $unit, latency $r_lat ms"
    read -ra mach1 < <(machine_ticks)
    read -r busy idle steal < <(awk -v b=$((mach1[0] - mach0[0])) -v i=$((mach1[1] - mach0[1])) \
      -v s=$((mach1[2] - mach0[2])) -v hz="$clk_tck" -v n="$r_txns" \
      'BEGIN { f = 1e6 / hz / n; printf "%.1f %.1f %.1f\n", b * f, i * f, s * f }')
    busy_runs[$key]+=" $busy"
    idle_runs[$key]+=" $idle"
    line+=", machine $busy µs busy + $idle µs idle per txn (steal $steal)"
    if [ -n "$r_conn_ms" ]; then
      conn_runs[$key]+=" $r_conn_ms"
      line+=", average connection time $r_conn_ms ms"
    fi
    [ -n "$r_init_ms" ] && line+=", initial connection time $r_init_ms ms"
    if [ ${#pids[@]} -gt 0 ]; then
      cpu=$(awk -v d=$(($(cpu_ticks "${pids[@]}") - ticks)) -v hz="$clk_tck" -v n="$r_txns" \
        'BEGIN { printf "%.1f", d / hz * 1e6 / n }')
      ctxn=$(awk -v d=$(($(ctx_switches "${pids[@]}") - ctx)) -v n="$r_txns" 'BEGIN { printf "%.3f", d / n }')
      waitn=$(awk -v d=$(($(rq_wait_us "${pids[@]}") - wait0)) -v n="$r_txns" 'BEGIN { printf "%.1f", d / n }')
      cpu_runs[$key]+=" $cpu"
      ctx_runs[$key]+=" $ctxn"
      wait_runs[$key]+=" $waitn"
      line+=", CPU $cpu µs/txn, $ctxn context switches/txn, $waitn µs/txn waiting for a CPU"
    fi
  fi
  case "$way" in
    fresh | warm | admission)
      srv=$(bouncer_servers)
      srv_runs[$key]+=" $srv"
      line+=", $srv server connections in its pool after the run"
      [ "$way" = fresh ] && [ "$workload" = connect ] && bouncer_console "SET server_lifetime = 3600"
      [ "$way" = admission ] && bouncer_console "SET default_pool_size = $bouncer_pool"
      bouncer_drop  # its backends must not sit beside the next way's
      ;;
    bpair)
      srv=$(($(bouncer_servers "$work/$mode/b1") + $(bouncer_servers "$work/$mode/b2")))
      srv_runs[$key]+=" $srv"
      line+=", $srv server connections in their pools after the run"
      bouncer_drop "$work/$mode/b1"
      bouncer_drop "$work/$mode/b2"
      ;;
  esac
  echo "$line$detail" >&2
}

db_of() { if [ "$1" = sysbench ]; then echo sbtest; else echo postgres; fi; }  # db_of WORKLOAD
label_of() {
  case "$1" in
    simple) echo "pgbench -S -M simple" ;;
    prepared) echo "pgbench -S -M prepared" ;;
    sysbench) echo "sysbench oltp_read_write" ;;
    connect) echo "pgbench -C -S (conn/s)" ;;
  esac
}

echo "$ROUNDS rounds per cell, the order of the ways rotated each round: ${ways[*]}" >&2
for mode in "${modes[@]}"; do
  start_ways "$mode"
  for workload in "${workloads[@]}"; do
    for clients in "${client_counts[@]}"; do
      for round in $(seq "$ROUNDS"); do
        for i in "${!ways[@]}"; do
          way=${ways[$(((i + round - 1) % ${#ways[@]}))]}
          [ "$way" = admission ] && [ "$clients" -le "$ADMISSION" ] && continue
          measure "$mode" "$workload" "$clients" "$way" "$round"
        done
      done
    done
  done
  stop_ways "$mode"
done
load_at_end=$(cut -d' ' -f1-3 /proc/loadavg)

# The summary.
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
med() { local -n runs_of=$1; tr ' ' '\n' <<<"${runs_of[$2]:-}" | awk NF | median; }  # med ARRAY KEY
spread() {  # spread ARRAY KEY: min-max of the runs
  local -n runs_of=$1
  tr ' ' '\n' <<<"${runs_of[$2]:-}" | awk NF | sort -n |
    awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR == 0) print "-"; else printf "%.0f-%.0f\n", lo, hi }'
}
# In the awk programs below, "-" is a median that is missing (every run of it failed).
awk_lib='
function num(v, fmt) { return (v == "-" || v == "") ? "-" : sprintf(fmt, v) }
function ratio(a, b) { return (a == "-" || b == "-" || b + 0 == 0) ? "-" : sprintf("%.2fx", a / b) }'
sb_note=
for mode in "${modes[@]}"; do
  echo
  echo "== upstream $mode: throughput (tps; pgbench -C: connections/s), median of $ROUNDS runs; spread: min-max of the runs"
  printf '%-24s %7s %9s %9s %9s %9s %15s %14s %12s %15s %15s\n' workload clients direct pgbouncer pgproxy "send()" \
    pgproxy/bouncer pgproxy/direct send/pgproxy "pgproxy spread" "bouncer spread"
  for workload in "${workloads[@]}"; do
    for clients in "${client_counts[@]}"; do
      k="$mode,$workload,$clients"
      awk -v l="$(label_of "$workload")" -v c="$clients" -v d="$(med tps_runs "$k,direct")" \
        -v b="$(med tps_runs "$k,fresh")" -v p="$(med tps_runs "$k,pgproxy")" -v q="$(med tps_runs "$k,send")" \
        -v ps="$(spread tps_runs "$k,pgproxy")" -v bs="$(spread tps_runs "$k,fresh")" "$awk_lib"'
        BEGIN { printf "%-24s %7s %9s %9s %9s %9s %15s %14s %12s %15s %15s\n", l, c, num(d, "%.0f"), num(b, "%.0f"),
          num(p, "%.0f"), num(q, "%.0f"), ratio(p, b), ratio(p, d), ratio(q, p), ps, bs }'
    done
  done
  echo
  echo "== upstream $mode: cost, medians. lat: the client's average latency (ms); cpu: the proxy's CPU per transaction" \
    "(user + system, all threads, µs);"
  echo "   ctx: context switches (voluntary + involuntary, all threads) per transaction; servers: pgbouncer's server" \
    "connections after its run"
  printf '%-24s %7s %10s %11s %11s %10s %11s %11s %10s %11s %10s %8s\n' workload clients "lat:direct" "lat:bouncer" \
    "lat:pgproxy" "lat:send()" "cpu:bouncer" "cpu:pgproxy" "cpu:send()" "ctx:pgproxy" "ctx:send()" servers
  for workload in "${workloads[@]}"; do
    for clients in "${client_counts[@]}"; do
      k="$mode,$workload,$clients"
      awk -v l="$(label_of "$workload")" -v c="$clients" -v ld="$(med lat_runs "$k,direct")" \
        -v lb="$(med lat_runs "$k,fresh")" -v lp="$(med lat_runs "$k,pgproxy")" -v lq="$(med lat_runs "$k,send")" \
        -v cb="$(med cpu_runs "$k,fresh")" -v cp="$(med cpu_runs "$k,pgproxy")" -v cq="$(med cpu_runs "$k,send")" \
        -v xp="$(med ctx_runs "$k,pgproxy")" -v xq="$(med ctx_runs "$k,send")" -v s="$(med srv_runs "$k,fresh")" \
        "$awk_lib"'
        BEGIN { printf "%-24s %7s %10s %11s %11s %10s %11s %11s %10s %11s %10s %8s\n", l, c, num(ld, "%.3f"),
          num(lb, "%.3f"), num(lp, "%.3f"), num(lq, "%.3f"), num(cb, "%.1f"), num(cp, "%.1f"), num(cq, "%.1f"),
          num(xp, "%.3f"), num(xq, "%.3f"), num(s, "%.0f") }'
    done
  done
  echo
  echo
  echo "== upstream $mode: where the machine's time goes, medians, µs per transaction. busy: user + system + irq +" \
    "softirq of the whole"
  echo "   machine (clients, server and proxy); idle: its idle time; wait: the proxy's threads runnable but waiting" \
    "for a CPU. On this"
  echo "   VM the same work takes up to 1.5x the CPU time from one run to the next: compare ways within a round" \
    "(stderr), not runs"
  printf '%-24s %7s %12s %13s %13s %12s %13s %13s %13s %13s\n' workload clients "busy:direct" "busy:bouncer" \
    "busy:pgproxy" "idle:direct" "idle:bouncer" "idle:pgproxy" "wait:bouncer" "wait:pgproxy"
  for workload in "${workloads[@]}"; do
    for clients in "${client_counts[@]}"; do
      k="$mode,$workload,$clients"
      awk -v l="$(label_of "$workload")" -v c="$clients" -v bd="$(med busy_runs "$k,direct")" \
        -v bb="$(med busy_runs "$k,fresh")" -v bp="$(med busy_runs "$k,pgproxy")" \
        -v id="$(med idle_runs "$k,direct")" -v ib="$(med idle_runs "$k,fresh")" -v ip="$(med idle_runs "$k,pgproxy")" \
        -v wb="$(med wait_runs "$k,fresh")" -v wp="$(med wait_runs "$k,pgproxy")" "$awk_lib"'
        BEGIN { printf "%-24s %7s %12s %13s %13s %12s %13s %13s %13s %13s\n", l, c, num(bd, "%.1f"),
          num(bb, "%.1f"), num(bp, "%.1f"), num(id, "%.1f"), num(ib, "%.1f"), num(ip, "%.1f"), num(wb, "%.1f"),
          num(wp, "%.1f") }'
    done
  done
  for workload in "${workloads[@]}"; do
    [ "$workload" = connect ] && continue  # with -C each server connection is used once and closed
    for clients in "${client_counts[@]}"; do
      servers=$(med srv_runs "$mode,$workload,$clients,fresh")
      [ "$servers" != - ] && awk -v s="$servers" -v c="$clients" 'BEGIN { exit !(s < c) }' &&
        echo "note: $(label_of "$workload"), $clients clients: pgbouncer (fresh) had opened only $servers server" \
          "connections by the end of its run (median): the other clients were still queued for a server session," \
          "so its run was partly admission-controlled; a longer DURATION makes that ramp a smaller part of the run"
    done
  done
  if [ "$WARM" = 1 ] || [ -n "$ADMISSION" ]; then
    echo
    echo "== upstream $mode: extras (not the pgbouncer figure of the targets), medians:" \
      "warm: pgbouncer with its pool warmed by a 3 s run of the same workload (warm pool, extra);"
    echo "   adm: pgbouncer with default_pool_size ${ADMISSION:--}, queueing the surplus clients (admission-controlled," \
      "extra; only above ${ADMISSION:--} clients)"
    printf '%-24s %7s %9s %13s %10s %9s %9s %12s %9s %9s %9s\n' workload clients "warm tps" pgproxy/warm "warm lat" \
      "warm cpu" "adm tps" pgproxy/adm "adm lat" "adm cpu" "adm srv"
    for workload in "${workloads[@]}"; do
      for clients in "${client_counts[@]}"; do
        k="$mode,$workload,$clients"
        awk -v l="$(label_of "$workload")" -v c="$clients" -v p="$(med tps_runs "$k,pgproxy")" \
          -v w="$(med tps_runs "$k,warm")" -v wl="$(med lat_runs "$k,warm")" -v wc="$(med cpu_runs "$k,warm")" \
          -v a="$(med tps_runs "$k,admission")" -v al="$(med lat_runs "$k,admission")" \
          -v ac="$(med cpu_runs "$k,admission")" -v as="$(med srv_runs "$k,admission")" "$awk_lib"'
          BEGIN { printf "%-24s %7s %9s %13s %10s %9s %9s %12s %9s %9s %9s\n", l, c, num(w, "%.0f"), ratio(p, w),
            num(wl, "%.3f"), num(wc, "%.1f"), num(a, "%.0f"), ratio(p, a), num(al, "%.3f"), num(ac, "%.1f"),
            num(as, "%.0f") }'
      done
    done
  fi
  if [ "$REUSE" = 1 ]; then
    echo
    echo "== upstream $mode: two processes on one port (extras, not the figures of the targets), medians." \
      "x2: two pgproxy --reuse-port, each with"
    echo "   its own SQL log and capture; bouncer x2: two pgbouncer with so_reuseport = 1; cpu: both processes'" \
      "CPU per transaction (µs)"
    printf '%-24s %7s %9s %11s %14s %11s %13s %15s %7s %15s\n' workload clients "x2 tps" "bouncer x2" \
      "x2/bouncer x2" x2/pgproxy "x2 spread" "bouncer x2 spr" "cpu:x2" "cpu:bouncer x2"
    for workload in "${workloads[@]}"; do
      for clients in "${client_counts[@]}"; do
        k="$mode,$workload,$clients"
        awk -v l="$(label_of "$workload")" -v c="$clients" -v p="$(med tps_runs "$k,pgproxy")" \
          -v x="$(med tps_runs "$k,pair")" -v y="$(med tps_runs "$k,bpair")" -v xs="$(spread tps_runs "$k,pair")" \
          -v ys="$(spread tps_runs "$k,bpair")" -v xc="$(med cpu_runs "$k,pair")" -v yc="$(med cpu_runs "$k,bpair")" \
          "$awk_lib"'
          BEGIN { printf "%-24s %7s %9s %11s %14s %11s %13s %15s %7s %15s\n", l, c, num(x, "%.0f"), num(y, "%.0f"),
            ratio(x, y), ratio(x, p), xs, ys, num(xc, "%.1f"), num(yc, "%.1f") }'
      done
    done
  fi
  for clients in "${client_counts[@]}"; do
    [[ " ${workloads[*]} " == *" connect "* ]] || break
    times=
    for way in "${ways[@]}"; do
      ms=$(med conn_runs "$mode,connect,$clients,$way")
      [ "$ms" = - ] || times+="${times:+; }$(way_name "$way") $ms"
    done
    echo "pgbench -C -S, $(count_word "$clients"), average connection time (ms, median): $times"
  done
  echo
  echo "${notes[$mode]}"
  if [[ " ${workloads[*]} " == *" sysbench "* ]]; then
    sb_note+="${sb_note:+; }$mode $(for way in "${ways[@]}"; do
      { cat "$work/$mode/sysbench-"*"-$way-"*.out 2>/dev/null || true; } | awk '/ignored errors:/ { n += $3 } END { print n + 0 }'
    done | paste -sd/)"
  fi
done
echo
[ -n "$sb_note" ] && echo "errors sysbench ignored (duplicate keys, deadlocks), $(IFS=/; echo "${ways[*]}"): $sb_note"
echo "(direct and the proxies' clients over TCP; pgbench -j min(2, clients), scale $SCALE; sysbench 8 tables" \
  "x 10000 rows; ${DURATION}s per run; send(): pgproxy --no-io-uring, one send() per socket instead of one" \
  "io_uring call per poll round; pgbouncer: session mode, pool $bouncer_pool, its server connections dropped" \
  "before and after each run)"

# The targets, one line per kind and workload, one verdict per client count; only measured cells.
targets=()
ratio_verdict() {  # ratio_verdict CLIENTS A B MIN: A/B against MIN
  awk -v c="$(count_word "$1")" -v a="$2" -v b="$3" -v m="$4" 'BEGIN {
    if (a == "-" || b == "-" || b + 0 == 0) printf "%s: n/a", c
    else printf "%s: %.2fx %s", c, a / b, (a + 0 >= m * b) ? "met" : "NOT met" }'
}
at_most_verdict() {  # at_most_verdict CLIENTS A B UNIT: A <= B
  awk -v c="$(count_word "$1")" -v a="$2" -v b="$3" -v u="$4" 'BEGIN {
    if (a == "-" || b == "-") printf "%s: n/a", c
    else printf "%s: %s vs %s %s %s", c, a, b, u, (a + 0 <= b + 0) ? "met" : "NOT met" }'
}
m() { med "$1" "$mode,$workload,$c,$2"; }  # m ARRAY WAY: a median of the cell at_counts is at (its $c)
at_counts() {  # at_counts COUNTS KIND MIN_OR_UNIT: the verdict list, for each client count in COUNTS
  local counts=$1 kind=$2 x=$3 out=() c
  for c in "${client_counts[@]}"; do
    [[ " $counts " == *" $c "* ]] || [ "$counts" = all ] || continue
    case "$kind" in
      vs-bouncer) out+=("$(ratio_verdict "$c" "$(m tps_runs pgproxy)" "$(m tps_runs fresh)" "$x")") ;;
      vs-direct) out+=("$(ratio_verdict "$c" "$(m tps_runs pgproxy)" "$(m tps_runs direct)" "$x")") ;;
      send) out+=("$(ratio_verdict "$c" "$(m tps_runs send)" "$(m tps_runs pgproxy)" "$x")") ;;
      latency) out+=("$(at_most_verdict "$c" "$(m lat_runs pgproxy)" "$(m lat_runs fresh)" "$x")") ;;
      cpu) out+=("$(at_most_verdict "$c" "$(m cpu_runs pgproxy)" "$(m cpu_runs fresh)" "$x")") ;;
      vs-warm) out+=("$(ratio_verdict "$c" "$(m tps_runs pgproxy)" "$(m tps_runs warm)" "$x" | sed 's/ \(NOT \)*met$//')") ;;
    esac
  done
  [ ${#out[@]} -gt 0 ] || return 0
  local IFS=';' joined
  joined="${out[*]}"
  echo "${joined//;/; }"
}
target() {  # target TEXT COUNTS KIND ARG: a target line, if any of COUNTS was measured
  local v
  v=$(at_counts "$2" "$3" "$4")
  [ -n "$v" ] && targets+=("target [$mode] $(label_of "$workload"): $1: $v")
  return 0
}
for mode in "${modes[@]}"; do
  for workload in "${workloads[@]}"; do
    if [ "$TLS" = 0 ]; then
      [ "$workload" = connect ] && continue  # issue 17 sets no target for it
      target "pgproxy >= 1.10x pgbouncer (fresh) tps" "8 50 500" vs-bouncer 1.10
      target "pgproxy >= 0.85x direct tps" 50 vs-direct 0.85
      target "pgproxy's average latency <= pgbouncer's (fresh)" 1 latency ms
      target "pgproxy's CPU per transaction <= pgbouncer's (fresh)" all cpu µs
      target "send() (no io_uring) >= 0.90x pgproxy tps" all send 0.90
    else  # issue 13's targets, against pgbouncer with fresh server connections
      min=1.1
      [ "$workload" = connect ] && min=1.0
      target "pgproxy >= ${min}x pgbouncer (fresh)" all vs-bouncer "$min"
      [ "$WARM" = 1 ] && target "(against its warm pool, extra)" all vs-warm "$min"
    fi
  done
done
echo
printf '%s\n' "${targets[@]}"
all_verdicts=$(printf '%s\n' "${targets[@]}" | grep -o '\(NOT \)*met' || true)
echo "targets: $(grep -cx met <<<"$all_verdicts" || true) of $(grep -c . <<<"$all_verdicts" || true) met"
echo "machine: load average $load_at_end at the end of the runs"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED runs (left out of the medians):"
  printf '  %s\n' "${failed[@]}"
fi

# Idle connections: a fresh pgproxy, so its RSS shows only what they cost.
settle
pgproxy_port=$(free_port)
start_pgproxy "$pgproxy_port" "$(upstream_of "${modes[0]}")" idle
proxy_pid=$!
wait_ready "$pgproxy_port"
idle_target_mb=64
[ "$TLS" = 1 ] && idle_target_mb=96
python3 - "$pgproxy_port" "$proxy_pid" "$IDLE" "$TLS" "$idle_target_mb" "${modes[0]}" "$work" <<'EOF'
# Opens N sessions through the proxy (sessions.py), keeps them open and idle, and reads the
# proxy's memory from /proc/PID/status.
import sys, time

port, pid, n, tls, target_mb = (int(a) for a in sys.argv[1:6])
upstream = sys.argv[6]
sys.path.insert(0, sys.argv[7])
from sessions import open_sessions


def status():
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


before = status()
t0 = time.monotonic()
socks = open_sessions(port, n, tls, "postgres", "idle")
opened = time.monotonic() - t0
time.sleep(1)
with_idle = status()
tls_what = f"{socks[0].version()} {socks[0].cipher()[0]} " if tls else ""
print(f"idle connections: {n} complete {tls_what}sessions through pgproxy (upstream {upstream}, each with its "
      f"server backend) opened in {opened:.1f} s; pgproxy VmRSS {before['VmRSS'] // 1024} MB before, "
      f"{with_idle['VmRSS'] // 1024} MB ({with_idle['VmRSS']} KiB) with them idle, "
      f"VmHWM {with_idle['VmHWM'] // 1024} MB; "
      f"{(with_idle['VmRSS'] - before['VmRSS']) / n:.1f} KiB per connection "
      f"(target < {target_mb} MB: {'met' if with_idle['VmRSS'] < target_mb * 1024 else 'NOT met'})")
for s in socks:
    s.close()
EOF
stop_pid "$proxy_pid"; proxy_pid=
[ "$stopped_rc" -eq 0 ] || echo "pgproxy (idle test) exited with status $stopped_rc" >&2
[ ${#failed[@]} -eq 0 ]
