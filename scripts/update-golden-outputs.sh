#!/usr/bin/env bash
# Rebuilds corpus/captures/ from the recorded real conversations in
# corpus/recorded/ and the expected pgdump-log outputs in corpus/expected/.
# Review the diff before committing: the expected files are the reference
# the test suite holds pgdump-log to.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${BIN:-}" ] || scripts/build.sh release >/dev/null
bin=${BIN:-build/release}
mkdir -p corpus/captures corpus/expected
for rec in corpus/recorded/*.rec; do
  name=$(basename "$rec" .rec)
  cap=corpus/captures/$name.pgwcap
  "$bin/tests/support/rec2cap" "$rec" "$cap"
  "$bin/tools/pgdump-log/pgdump-log" --no-progress "$cap" >corpus/expected/$name.sql
  "$bin/tools/pgdump-log/pgdump-log" --no-progress --format json "$cap" >corpus/expected/$name.json
  "$bin/tools/pgdump-log/pgdump-log" --no-progress --format trace "$cap" >corpus/expected/$name.trace
  "$bin/tools/pgdump-log/pgdump-log" --no-progress --stats "$cap" >corpus/expected/$name.stats
done
# A capture without backend frames (pgproxy without --capture-backend).
"$bin/tests/support/rec2cap" corpus/recorded/pgbench_extended.rec corpus/captures/pgbench_extended_frontend_only.pgwcap --frontend-only
"$bin/tools/pgdump-log/pgdump-log" --no-progress corpus/captures/pgbench_extended_frontend_only.pgwcap \
  >corpus/expected/pgbench_extended_frontend_only.sql
"$bin/tools/pgdump-log/pgdump-log" --no-progress --format trace --hide-volatile corpus/captures/scram_login.pgwcap \
  >corpus/expected/scram_login.hidden.trace
"$bin/tools/pgdump-log/pgdump-log" --no-progress --stats --stats-format json corpus/captures/pgbench_prepared.pgwcap \
  >corpus/expected/pgbench_prepared.stats.json
"$bin/tools/pgdump-log/pgdump-log" --no-progress corpus/captures/psql_multi.pgwcap corpus/captures/pgbench_simple.pgwcap \
  >corpus/expected/merged.sql
echo "updated corpus/captures and corpus/expected; review: git diff --stat corpus/"
