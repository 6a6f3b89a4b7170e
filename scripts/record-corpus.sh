#!/usr/bin/env bash
# Rebuilds the recorded real conversations in corpus/recorded/*.rec (see corpus/recorded/README.md).
#   scripts/record-corpus.sh              # all of them
#   scripts/record-corpus.sh cancel ...   # only the named ones
# Each recording starts its own throwaway PostgreSQL (tests/support/pg_server.hpp) and runs a real
# client (psql, pgbench) through the recording relay. Needs the Debian packages of
# scripts/install-deps.sh. Timestamps, SCRAM nonces, process ids and cancel keys differ on every
# run, so re-recording always changes the files; the conversations themselves stay the same.
# BUILD_DIR (default build/release) is where pgwire-record is built.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${BUILD_DIR:-build/release}
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  cmake -S . -B "$build_dir" "${generator[@]}" -DPGWIRE_WERROR=ON >/dev/null
fi
cmake --build "$build_dir" --target pgwire-record >/dev/null
record="$build_dir/tests/support/pgwire-record"
out=corpus/recorded
in=corpus/recorded/inputs

psql_multi() {
  "$record" --out "$out/psql_multi.rec" --note-file "$in/psql_multi.sql" \
    --description "psql -f: separate queries, unicode and newlines, a 2-statement Query, 42P01, a 3-statement Query failing with 22012 in the middle" \
    -- psql -X -f "$in/psql_multi.sql"
}

pgbench_mode() {  # $1 = simple | extended | prepared
  "$record" --out "$out/pgbench_$1.rec" --setup "pgbench -i -q -s 1" --client-env PGSSLMODE=disable \
    --description "pgbench -M $1, built-in TPC-B, 5 transactions on 1 client (pgbench -i ran directly first)" \
    -- pgbench -n -M "$1" -t 5 -c 1
}

copy_in_out() {
  "$record" --out "$out/copy_in_out.rec" --note-file "$in/copy_in_out.sql" \
    --description "psql -f: COPY FROM STDIN (text and csv), COPY TO STDOUT (text and csv), a COPY FROM STDIN failing with 22P02" \
    -- psql -X -f "$in/copy_in_out.sql"
}

pipeline_error() {
  # pgbench aborts the client on the error and exits 2.
  "$record" --out "$out/pipeline_error.rec" --note-file "$in/pipeline_error.sql" --expect-exit 2 \
    --client-env PGSSLMODE=disable \
    --description "pgbench -M extended pipeline: 3 queries + one Sync sent at once, the 2nd fails with 22012, the 3rd is skipped" \
    -- pgbench -n -M extended -t 1 -c 1 -f "$in/pipeline_error.sql"
}

scram_login() {
  "$record" --out "$out/scram_login.rec" --auth scram-sha-256 \
    --description "psql login with SCRAM-SHA-256 (after SSLRequest answered N), one query" \
    -- psql -X -c "SELECT current_user, 'scram ok' AS result"
}

cancel() {
  # timeout sends SIGINT after 1 s; psql sends a CancelRequest on a new connection; timeout exits 124.
  "$record" --out "$out/cancel.rec" --expect-exit 124 \
    --description "psql running pg_sleep(10), SIGINT after 1 s: CancelRequest on a 2nd connection, query fails with 57014" \
    -- timeout -s INT 1 psql -X -c "SELECT pg_sleep(10)"
}

all=(psql_multi pgbench_simple pgbench_extended pgbench_prepared copy_in_out pipeline_error
     scram_login cancel)
names=("$@")
[ ${#names[@]} -eq 0 ] && names=("${all[@]}")
for name in "${names[@]}"; do
  case "$name" in
    pgbench_simple | pgbench_extended | pgbench_prepared) pgbench_mode "${name#pgbench_}" ;;
    psql_multi | copy_in_out | pipeline_error | scram_login | cancel) "$name" ;;
    *) echo "record-corpus: unknown recording '$name' (known: ${all[*]})" >&2; exit 2 ;;
  esac
  size=$(stat -c %s "$out/$name.rec")
  if [ "$size" -gt 204800 ]; then
    echo "record-corpus: $out/$name.rec is $size bytes, keep recordings under 200 KB" >&2
    exit 1
  fi
done
