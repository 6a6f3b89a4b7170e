#!/usr/bin/env bash
# Where a proxy's transactions wait (issue 17): what each CPU and the proxy's loop thread do, from a
# trace of the scheduler, under pgbench -S through pgproxy and through pgbouncer.
#
#   bench/sched-trace.sh                   # 50 clients, TCP upstream, 3 rounds: about 2 minutes
#   CLIENTS=8 UPSTREAM=unix bench/sched-trace.sh
#
# Parameters (environment), with their defaults:
#   CLIENTS=50 UPSTREAM=tcp (or unix) ROUNDS=3 DURATION=8 TRACED=1 (seconds traced, in the middle of
#   each run) MODE=simple (pgbench -M) SCALE=10 BUILD_DIR=build/release
#
# Each round runs pgbench -S -c CLIENTS -j 2 for DURATION seconds through each proxy (the order
# rotated each round): pgproxy with its SQL log and capture on, and Debian's pgbouncer in session mode,
# started anew for each of its runs so that its server connections are as new as pgproxy's. In the
# middle of each run, `perf record -a` takes the sched_switch and sched_wakeup events of every CPU for
# TRACED seconds. From them, for the proxy's busiest thread (pgproxy's loop; pgbouncer has one) and
# for each instant of the trace: is the thread running, runnable but waiting for a CPU, or asleep;
# how many CPUs are idle; is any other task runnable but waiting. Printed per run, then the medians:
#   running / waiting     the share of the traced time the thread ran, or waited for a CPU
#   one idle              the share with one CPU idle (the other busy)
#   idle, proxy waiting   the share with one CPU idle while the proxy's thread waited for the other
#   idle, others waiting  the share with one CPU idle while other tasks (not the proxy) waited
# Needs root (perf record -a of scheduler tracepoints) and Debian's linux-perf.
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-50}
UPSTREAM=${UPSTREAM:-tcp}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
TRACED=${TRACED:-1}
MODE=${MODE:-simple}
SCALE=${SCALE:-10}
build_dir=${BUILD_DIR:-build/release}
case "$UPSTREAM" in tcp | unix) ;; *) echo "UPSTREAM must be tcp or unix" >&2; exit 2 ;; esac
if [ "$(id -u)" -ne 0 ]; then
  echo "sched-trace: needs root to trace the scheduler on every CPU" >&2
  exit 2
fi
if [ "$DURATION" -lt $((TRACED + 4)) ]; then
  echo "sched-trace: DURATION must be at least TRACED + 4 seconds" >&2
  exit 2
fi

scripts/install-deps.sh
source scripts/lib/build.sh
bench_build "$build_dir" release pgproxy
pgproxy_bin="$build_dir/tools/pgproxy/pgproxy"

source scripts/lib/pg.sh
work=$(mktemp -d /tmp/pgwire-sched-trace.XXXXXX)
chmod 755 "$work"  # pgbouncer runs as postgres and reads its files here
proxy_pid=
bouncer_pid=
cleanup() {
  set +e
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null && wait "$proxy_pid" 2>/dev/null
  [ -n "$bouncer_pid" ] && kill "$bouncer_pid" 2>/dev/null && wait "$bouncer_pid" 2>/dev/null
  pg_stop
  rm -rf "$work"
}
trap cleanup EXIT

pg_start "max_connections=$((2 * CLIENTS + 50))" >/dev/null
pgbench -i -q -s "$SCALE" >/dev/null 2>&1
case "$UPSTREAM" in
  tcp) upstream=127.0.0.1:$PG_PORT bouncer_host=127.0.0.1 ;;
  unix) upstream=$PG_DIR/.s.PGSQL.$PG_PORT bouncer_host=$PG_DIR ;;
esac
wait_ready() {  # wait_ready PORT: until a query goes through (10 s at most)
  for _ in $(seq 100); do psql -h 127.0.0.1 -p "$1" -Atc 'SELECT 1' >/dev/null 2>&1 && return 0; sleep 0.1; done
  psql -h 127.0.0.1 -p "$1" -Atc 'SELECT 1' >/dev/null
}

proxy_port=$(free_port)
"$pgproxy_bin" --listen 127.0.0.1:"$proxy_port" --upstream "$upstream" --sql-log "$work/pgproxy.sql.log" \
  --capture "$work/pgproxy.pgwcap" --stats-interval 0 2>"$work/pgproxy.err" &
proxy_pid=$!
wait_ready "$proxy_port"

bouncer_port=$(free_port)
printf '"postgres" ""\n' >"$work/userlist.txt"
cat >"$work/pgbouncer.ini" <<EOF
[databases]
postgres = host=$bouncer_host port=$PG_PORT
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
unix_socket_dir =
auth_type = trust
auth_file = $work/userlist.txt
pool_mode = session
max_client_conn = $((CLIENTS + 100))
default_pool_size = $((CLIENTS + 10))
ignore_startup_parameters = extra_float_digits,options
log_connections = 0
log_disconnections = 0
logfile = $work/pgbouncer.log
pidfile =
EOF
chown -R postgres: "$work"

# analyse PID: reads `perf script` of the trace on stdin, prints "running waiting one_idle
# idle_proxy_waiting idle_others_waiting" as percentages of the traced time, for the busiest
# thread of process PID.
cat >"$work/analyse.py" <<'EOF'
import collections, os, re, sys

pid = int(sys.argv[1])
threads = {int(t) for t in os.listdir(f"/proc/{pid}/task")}
switch = re.compile(r"prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+) ==> next_comm=.* next_pid=(\d+)")
wakeup = re.compile(r" pid=(\d+) prio=\d+ target_cpu=(\d+)")
events = []
for line in sys.stdin:
    parts = line.split(None, 3)
    if len(parts) < 4:
        continue
    events.append((float(parts[1].rstrip(":")), int(parts[0].strip("[]")), parts[2].rstrip(":"), parts[3]))
# The proxy's busiest thread: the one switched in most often.
switched_in = collections.Counter()
for _, _, kind, rest in events:
    m = switch.search(rest) if kind == "sched:sched_switch" else None
    if m and int(m.group(3)) in threads:
        switched_in[int(m.group(3))] += 1
if not switched_in:
    sys.exit("the trace never shows the proxy's threads running")
loop = switched_in.most_common(1)[0][0]
ncpu = os.cpu_count()
running = {}         # cpu -> pid running there (0: idle), once known
waiting = set()      # tasks runnable but not running
state = None         # the loop thread: "run", "wait", "sleep"; None until known
acc = collections.Counter()
last = None
for t, cpu, kind, rest in events:
    if last is not None and state is not None and len(running) == ncpu:
        dt = t - last
        acc["total"] += dt
        acc[state] += dt
        idle = sum(1 for p in running.values() if p == 0)
        if idle == 1:
            acc["one_idle"] += dt
            if state == "wait":
                acc["idle_proxy_waiting"] += dt
            if waiting - {loop}:
                acc["idle_others_waiting"] += dt
    last = t
    if kind == "sched:sched_switch":
        m = switch.search(rest)
        if not m:
            continue
        prev, prev_state, nxt = int(m.group(1)), m.group(2), int(m.group(3))
        running[cpu] = nxt
        waiting.discard(nxt)
        if prev != 0 and prev_state.startswith("R"):
            waiting.add(prev)
        else:
            waiting.discard(prev)  # it was taken for waiting by a wake-up the trace saw while it ran
        if prev == loop:
            state = "wait" if prev_state.startswith("R") else "sleep"
        if nxt == loop:
            state = "run"
    elif kind.startswith("sched:sched_wakeup"):
        m = wakeup.search(rest)
        if not m:
            continue
        woken = int(m.group(1))
        if woken not in running.values():
            waiting.add(woken)
        if woken == loop and state != "run":
            state = "wait"
total = acc["total"] or 1
print(" ".join(f"{100 * acc[k] / total:.1f}" for k in
               ("run", "wait", "one_idle", "idle_proxy_waiting", "idle_others_waiting")))
EOF

declare -A results
ways=(pgproxy pgbouncer)
echo "machine: $(nproc) CPUs, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "parameters: CLIENTS=$CLIENTS UPSTREAM=$UPSTREAM ROUNDS=$ROUNDS DURATION=$DURATION TRACED=$TRACED MODE=$MODE" \
  "SCALE=$SCALE; $(pgbouncer --version 2>&1 | sed -n 1p), pgproxy at commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
printf '%-10s %5s %9s %9s %9s %9s %20s %21s\n' way round tps running waiting "one idle" "idle, proxy waiting" \
  "idle, others waiting"
for round in $(seq "$ROUNDS"); do
  for i in "${!ways[@]}"; do
    way=${ways[$(((i + round - 1) % ${#ways[@]}))]}
    if [ "$way" = pgbouncer ]; then
      # It refuses to run as root; -u switches to postgres. A new process per run: new server connections.
      pgbouncer -u postgres "$work/pgbouncer.ini" >>"$work/pgbouncer.out" 2>&1 &
      bouncer_pid=$!
      wait_ready "$bouncer_port"
      port=$bouncer_port pid=$bouncer_pid
    else
      port=$proxy_port pid=$proxy_pid
    fi
    pgbench -h 127.0.0.1 -p "$port" -n -S -M "$MODE" -c "$CLIENTS" -j "$((CLIENTS < 2 ? CLIENTS : 2))" \
      -T "$DURATION" >"$work/pgbench.out" 2>&1 &
    bench=$!
    sleep $(((DURATION - TRACED) / 2))
    perf record -q -a -e sched:sched_switch -e sched:sched_wakeup -e sched:sched_wakeup_new \
      -o "$work/perf.data" -- sleep "$TRACED" >/dev/null 2>&1
    figures=$(perf script -i "$work/perf.data" -F cpu,time,event,trace 2>/dev/null | python3 "$work/analyse.py" "$pid")
    wait "$bench"
    tps=$(sed -n 's/^tps = \([0-9]*\).*/\1/p' "$work/pgbench.out" | head -1)
    if [ "$way" = pgbouncer ]; then
      kill "$bouncer_pid"
      wait "$bouncer_pid" 2>/dev/null || true
      bouncer_pid=
    fi
    results[$way]+="$figures"$'\n'
    read -r run wait one idle_proxy idle_others <<<"$figures"
    printf '%-10s %5s %9s %8s%% %8s%% %8s%% %19s%% %20s%%\n' "$way" "$round" "$tps" "$run" "$wait" "$one" \
      "$idle_proxy" "$idle_others"
  done
done
echo
echo "medians of $ROUNDS rounds, in % of the traced time:"
for way in "${ways[@]}"; do
  printf '%s' "${results[$way]}" | python3 -c '
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
cols = [statistics.median(c) for c in zip(*rows)]
print(f"{sys.argv[1]:<10} running {cols[0]:.1f}, waiting for a CPU {cols[1]:.1f}, one CPU idle {cols[2]:.1f}, "
      f"of which the proxy waiting {cols[3]:.1f}, other tasks waiting {cols[4]:.1f}")' "$way"
done
