# Shell helpers to run a throwaway PostgreSQL for the demo and the benchmarks.
# Source this file, then:
#   pg_start [extra postgres -c settings...]   sets PG_PORT, PG_DIR, PG_BIN, PG_LOG
#   pg_stop                                    (also run from an EXIT trap)
# The server listens on 127.0.0.1 only, on a free port, and runs as the
# postgres user when we are root.

pg_bindir() {
  if [ -n "${PGWIRE_PG_BINDIR:-}" ]; then echo "$PGWIRE_PG_BINDIR"; return; fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

as_pg_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_start() {
  PG_BIN=$(pg_bindir)
  [ -x "$PG_BIN/initdb" ] || { echo "pg.sh: no PostgreSQL server found (install postgresql)" >&2; return 1; }
  PG_DIR=$(mktemp -d /tmp/pgwire-pg.XXXXXX)
  [ "$(id -u)" -eq 0 ] && chown postgres: "$PG_DIR"
  PG_PORT=$(free_port)
  PG_LOG="$PG_DIR/server.log"
  as_pg_owner "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust --no-sync >"$PG_DIR/initdb.log" 2>&1 ||
    { cat "$PG_DIR/initdb.log" >&2; return 1; }
  local opts=(-c listen_addresses=127.0.0.1 -c port="$PG_PORT" -c unix_socket_directories="$PG_DIR"
              -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300)
  for s in "$@"; do opts+=(-c "$s"); done
  as_pg_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_LOG" -w -t 60 -o "${opts[*]}" start >/dev/null ||
    { tail -n 20 "$PG_LOG" >&2; return 1; }
  export PGHOST=127.0.0.1 PGPORT=$PG_PORT PGUSER=postgres PGDATABASE=postgres
}

pg_stop() {
  if [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR/data" ]; then
    as_pg_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
  PG_DIR=
}
