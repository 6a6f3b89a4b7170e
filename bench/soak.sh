#!/usr/bin/env bash
# Soak: the original task's acceptance run for pgproxy.
#
#   bench/soak.sh         # DURATION=300 THREADS=150 ASAN_DURATION=30 ASAN_THREADS=20
#                         # BUILD_DIR=build/release ASAN_BUILD_DIR=build/asan
#
# 1. A throwaway PostgreSQL (scripts/lib/pg.sh, max_connections=200); sysbench's oltp tables are
#    prepared directly against it (not through the proxy), and only then does the server start
#    logging every statement (ALTER SYSTEM log_statement=all, to its log file, with user@database
#    in the line prefix), so the prepare traffic is in neither log.
# 2. sysbench oltp_read_write, THREADS threads for DURATION seconds, through pgproxy (SQL log and
#    capture on). Checks:
#    - pgproxy is still alive when sysbench ends, and SIGTERM makes it exit 0;
#    - client errors: sysbench's exit status and its FATAL lines (errors it could not ignore); the
#      errors it ignored and the SQLSTATEs in the SQL log are listed, and every SQLSTATE must be
#      one the workload causes itself: 40P01 deadlock, 40001 serialization failure, 23505 the
#      duplicate key of oltp's concurrent delete/insert of one id;
#    - the count rule: the SQL log's query lines plus its executed execute lines equal the
#      server's "statement:" plus "execute ..." lines for user@sbtest written during the run.
# 3. The same, shorter (ASAN_DURATION s, ASAN_THREADS threads), with pgproxy built with
#    AddressSanitizer + UBSan (LeakSanitizer at exit): additionally no sanitizer report.
# Prints one summary per run and a verdict line. Loopback only; everything stops on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-300}
THREADS=${THREADS:-150}
ASAN_DURATION=${ASAN_DURATION:-30}
ASAN_THREADS=${ASAN_THREADS:-20}
build_dir=${BUILD_DIR:-build/release}
asan_dir=${ASAN_BUILD_DIR:-build/asan}

scripts/install-deps.sh  # sysbench, the PostgreSQL server and clients (apt-get --no-upgrade)
source scripts/lib/build.sh
bench_build "$build_dir" release pgproxy
bench_build "$asan_dir" asan pgproxy

source scripts/lib/pg.sh
work=$(mktemp -d /tmp/pgwire-soak.XXXXXX)
proxy_pid=
cleanup() {
  set +e  # a failing kill or wait must not skip the rest
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null && wait "$proxy_pid" 2>/dev/null
  pg_stop
  rm -rf "$work"
}
trap cleanup EXIT

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
pg_start max_connections=200
createdb sbtest
sb_common=(--db-driver=pgsql --pgsql-host=127.0.0.1 --pgsql-user=postgres --pgsql-password= --pgsql-db=sbtest
           --tables=10 --table-size=10000)
sysbench oltp_read_write "${sb_common[@]}" --pgsql-port="$PG_PORT" --threads=4 prepare >"$work/sb-prepare.out" 2>&1 ||
  { cat "$work/sb-prepare.out" >&2; exit 1; }
psql -q -d sbtest -c 'VACUUM ANALYZE'
psql -q -c "ALTER SYSTEM SET log_statement = 'all'" -c "ALTER SYSTEM SET log_line_prefix = '%m [%p] %u@%d '" \
  -c 'SELECT pg_reload_conf()' >/dev/null
sleep 1
[ "$(psql -Atc 'SHOW log_statement')" = all ] || { echo "log_statement=all did not take effect" >&2; exit 1; }

verdict_failures=()

# soak LABEL PGPROXY DURATION THREADS: one run through that pgproxy binary, checked and summarized.
soak() {
  local label=$1 bin=$2 seconds=$3 threads=$4
  local dir="$work/$label" port alive=no sb_rc=0 proxy_rc=0 hwm=0
  local failures=()
  mkdir -p "$dir"
  port=$(free_port)
  "$bin" --listen 127.0.0.1:"$port" --upstream 127.0.0.1:"$PG_PORT" --sql-log "$dir/sql.log" \
    --capture "$dir/capture.pgwcap" --stats-interval 60 2>"$dir/pgproxy.err" &
  proxy_pid=$!
  for _ in $(seq 200); do grep -q 'listening on' "$dir/pgproxy.err" && break; sleep 0.05; done
  grep -q 'listening on' "$dir/pgproxy.err" || { cat "$dir/pgproxy.err" >&2; return 1; }

  local log_offset
  log_offset=$(stat -c %s "$PG_LOG")
  sysbench oltp_read_write "${sb_common[@]}" --pgsql-port="$port" --threads="$threads" --time="$seconds" \
    --report-interval=0 run >"$dir/sysbench.out" 2>&1 || sb_rc=$?
  sleep 1
  if kill -0 "$proxy_pid" 2>/dev/null; then
    alive=yes
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$proxy_pid/status")
    kill -TERM "$proxy_pid"
  fi
  wait "$proxy_pid" 2>/dev/null || proxy_rc=$?
  proxy_pid=

  local tps fatal ignored server_count proxy_count sqlstates bad_states sanitizer
  tps=$(awk '/transactions:/ { gsub(/\(/, "", $3); print $3; exit }' "$dir/sysbench.out")
  ignored=$(awk '/ignored errors:/ { print $3; exit }' "$dir/sysbench.out")
  fatal=$(grep -c 'FATAL' "$dir/sysbench.out" || true)
  server_count=$(tail -c +"$((log_offset + 1))" "$PG_LOG" | grep -cE '@sbtest LOG:  (statement: |execute )' || true)
  # Text SQL log: "ts session=N client=A user=U db=D KIND OUTCOME ... sql: ...".
  proxy_count=$(awk '$6 == "query" || ($6 == "execute" && $7 != "not_executed") { n++ } END { print n + 0 }' "$dir/sql.log")
  sqlstates=$(awk '{ head = $0; i = index(head, " sql: "); if (i) head = substr(head, 1, i)
                     if (match(head, / sqlstate=[0-9A-Z]+/)) n[substr(head, RSTART + 10, RLENGTH - 10)]++ }
                   END { for (s in n) printf "%s%s=%d", (k++ ? " " : ""), s, n[s]; if (!k) printf "none" }' "$dir/sql.log")
  bad_states=$(awk '{ head = $0; i = index(head, " sql: "); if (i) head = substr(head, 1, i)
                      if (match(head, / sqlstate=[0-9A-Z]+/)) { s = substr(head, RSTART + 10, RLENGTH - 10)
                        if (s != "40P01" && s != "40001" && s != "23505") n++ } }
                    END { print n + 0 }' "$dir/sql.log")
  sanitizer=$(grep -cE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$dir/pgproxy.err" || true)

  echo "== $label: sysbench oltp_read_write, $threads threads, ${seconds}s through $bin"
  echo "sysbench: exit $sb_rc, ${tps:-?} tps, FATAL lines $fatal, ignored errors ${ignored:-?};" \
    "SQLSTATEs in the SQL log: $sqlstates"
  echo "pgproxy: alive at the end: $alive, exit status after SIGTERM: $proxy_rc, peak RSS (VmHWM) $((${hwm:-0} / 1024)) MB;" \
    "sanitizer reports: $sanitizer"
  grep -h 'exiting:' "$dir/pgproxy.err" | sed 's/^/pgproxy: /' || true
  echo "count rule: SQL log query + executed execute lines = $proxy_count," \
    "server log_statement lines (statement: + execute, user@sbtest, during the run) = $server_count"

  [ "$alive" = yes ] || failures+=("$label: pgproxy died")
  [ "$proxy_rc" -eq 0 ] || failures+=("$label: pgproxy exit status $proxy_rc")
  [ "$sb_rc" -eq 0 ] || failures+=("$label: sysbench exit status $sb_rc")
  [ "$fatal" -eq 0 ] || failures+=("$label: $fatal sysbench FATAL lines")
  [ "$bad_states" -eq 0 ] || failures+=("$label: $bad_states errors other than deadlock/serialization/duplicate key")
  [ "$proxy_count" -eq "$server_count" ] && [ "$server_count" -gt 0 ] ||
    failures+=("$label: statement counts differ ($proxy_count vs $server_count)")
  [ "$sanitizer" -eq 0 ] || { failures+=("$label: $sanitizer sanitizer reports"); grep -A30 -E 'ERROR: |runtime error:' "$dir/pgproxy.err" | head -60 >&2; }
  if [ ${#failures[@]} -gt 0 ]; then
    verdict_failures+=("${failures[@]}")
    grep -h FATAL "$dir/sysbench.out" | sort | uniq -c | head >&2 || true
  fi
}

soak release "$build_dir/tools/pgproxy/pgproxy" "$DURATION" "$THREADS"
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
soak asan "$asan_dir/tools/pgproxy/pgproxy" "$ASAN_DURATION" "$ASAN_THREADS"

if [ ${#verdict_failures[@]} -eq 0 ]; then
  echo "verdict: PASS (no proxy crash, clean exit, no client error caused by the proxy, statement counts equal," \
    "no ASan/UBSan/LSan report)"
else
  echo "verdict: FAIL: $(printf '%s; ' "${verdict_failures[@]}")"
  exit 1
fi
