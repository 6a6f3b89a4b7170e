#!/usr/bin/env bash
# The main job, end to end: installs what is needed, builds, starts a
# throwaway PostgreSQL (unless UPSTREAM=host:port is given), puts pgproxy in
# front of it, runs a little real traffic through it (psql and pgbench),
# shows the SQL log, a decoded capture and its statistics, and replays the
# capture with pgreplay --compare into a copy of the database taken before
# the traffic (on the throwaway server only: never into yours), and ends by
# writing the HTML reports (pgdump-log's of the capture, pgreplay's of the
# replay) and printing their paths.
#   scripts/demo.sh                 # everything local and temporary
#   UPSTREAM=127.0.0.1:5432 scripts/demo.sh
# Output files are kept in $OUT (default: a new directory under /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release >/dev/null
bin=build/release/tools
source scripts/lib/pg.sh

OUT=${OUT:-$(mktemp -d /tmp/pgwire-demo.XXXXXX)}
mkdir -p "$OUT"
cleanup() {
  [ -n "${proxy_pid:-}" ] && kill "$proxy_pid" 2>/dev/null || true
  pg_stop
}
trap cleanup EXIT

if [ -n "${UPSTREAM:-}" ]; then
  upstream=$UPSTREAM
else
  echo "== starting a throwaway PostgreSQL"
  pg_start
  upstream=127.0.0.1:$PG_PORT
  # The state before the traffic, for the replay at the end.
  createdb -T postgres demo_replay
fi
proxy_port=$(free_port)
echo "== pgproxy 127.0.0.1:$proxy_port -> $upstream"
"$bin/pgproxy/pgproxy" --listen "127.0.0.1:$proxy_port" --upstream "$upstream" \
  --sql-log "$OUT/sql.log" --capture "$OUT/capture.pgwcap" --capture-backend --stats-interval 0 \
  2>"$OUT/pgproxy.err" &
proxy_pid=$!
for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p "$proxy_port" && break; sleep 0.1; done

export PGHOST=127.0.0.1 PGPORT=$proxy_port PGUSER=${PGUSER:-postgres} PGDATABASE=${PGDATABASE:-postgres}
echo "== psql through the proxy"
psql -X -q -v ON_ERROR_STOP=0 <<'SQL' || true
CREATE TABLE IF NOT EXISTS demo_items (id int PRIMARY KEY, name text);
INSERT INTO demo_items VALUES (1, 'héllo'), (2, 'wörld') ON CONFLICT DO NOTHING;
SELECT id, name FROM demo_items ORDER BY id;
SELECT 1 AS a; SELECT 2 AS b;
SELECT * FROM no_such_table;
SELECT count(*) FROM demo_items
  WHERE name LIKE '%l%';
SQL
echo "== pgbench through the proxy (extended protocol, 4 clients, 3 s)"
pgbench -i -q -s 1 >/dev/null 2>&1
pgbench -M extended -c 4 -j 2 -T 3 -n 2>&1 | grep -E 'tps|number of transactions actually' || true
kill -TERM "$proxy_pid"; wait "$proxy_pid" || true; proxy_pid=

echo
echo "== SQL log ($OUT/sql.log, $(wc -l <"$OUT/sql.log") statements), first lines:"
head -n 12 "$OUT/sql.log"
echo
echo "== the capture decoded offline: pgdump-log --format trace (first lines)"
# (head closes the pipe early: pgdump-log then ends by SIGPIPE, which is fine here)
"$bin/pgdump-log/pgdump-log" --no-progress --format trace "$OUT/capture.pgwcap" | head -n 25 || true
echo
echo "== pgdump-log --stats"
"$bin/pgdump-log/pgdump-log" --no-progress --stats --top 5 "$OUT/capture.pgwcap"
echo
if [ -z "${UPSTREAM:-}" ]; then
  echo "== pgreplay: the capture replayed into demo_replay (a copy taken before the traffic), outcomes compared"
  # PGDATABASE (exported above for the clients) is not applied to replayed sessions; unset, the
  # report does not warn about it. --map-database sends the captured database to the copy.
  env -u PGDATABASE PGHOST=127.0.0.1 PGPORT="$PG_PORT" "$bin/pgreplay/pgreplay" --no-progress --compare \
    --map-database postgres=demo_replay --report "$OUT/replay.json" --report-html "$OUT/replay.html" \
    "$OUT/capture.pgwcap" || true
else
  echo "== pgreplay --dry-run (not replayed: UPSTREAM is your server), first lines:"
  "$bin/pgreplay/pgreplay" --dry-run "$OUT/capture.pgwcap" | head -n 12 || true
fi
echo
echo "Files: $OUT/sql.log (SQL log), $OUT/capture.pgwcap (capture), $OUT/pgproxy.err (proxy messages)"
echo
echo "== pgdump-log --report-html: the capture as one page (statements/s, errors/s and latency over time,"
echo "   top statements, errors by SQLSTATE, sessions); self-contained, opens offline in any browser"
"$bin/pgdump-log/pgdump-log" --no-progress --report-html "$OUT/report.html" "$OUT/capture.pgwcap" >/dev/null
echo "Report: $OUT/report.html"
if [ -z "${UPSTREAM:-}" ]; then
  echo
  echo "== pgreplay --report-html (written by the replay above): latency per statement captured vs replayed,"
  echo "   lag behind schedule over time, every --compare divergence with both outcomes"
  echo "Replay report: $OUT/replay.html"
fi
