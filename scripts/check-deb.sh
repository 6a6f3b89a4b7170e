#!/usr/bin/env bash
# The .deb end to end, on this machine (as root; it installs and purges the
# package, so run it on a throwaway machine such as CI's):
#   1. builds the release tree and `cpack -G DEB` in it,
#   2. dpkg -i pgwire-toolkit_*.deb, and checks what landed: the tools on the
#      PATH, the man pages, the unit (systemd-analyze verify), the conffiles,
#   3. runs the service the way systemd would, against a throwaway PostgreSQL
#      on a free loopback port: an instance configuration made from the
#      installed main.conf (listen and upstream changed), checked with
#      pgproxy --check-config, then the unit's ExecStart: with systemctl when
#      systemd is PID 1, otherwise by hand as an unprivileged user of the
#      dynamic range (what DynamicUser gives) with no capabilities, no new
#      privileges, umask 0077 and the LogsDirectory created as systemd does,
#   4. psql through pgproxy: the statement is in the SQL log, which is mode
#      0600; ExecReload (SIGHUP) after a logrotate-style move: a new log, and
#      pgproxy still serves; SIGTERM: it exits 0,
#   5. dpkg --purge, and checks nothing is left.
# Prints PASS/FAIL lines; exit 0 when all passed, 1 on a failure, 77 when it
# cannot run here (not root, or pgwire-toolkit already installed: that one is
# left alone). Cleans up on any exit. Talks only to 127.0.0.1.
#   scripts/check-deb.sh [--no-build]     (BUILD_DIR=build/release by default)
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
build=${BUILD_DIR:-$src/build/release}
package=pgwire-toolkit
instance=check-deb
started=$(date +%s)

pass() { echo "PASS: $*"; }
fail() {
  echo "FAIL: $*"
  exit 1
}
skip() {
  echo "SKIP: $*"
  exit 77
}

[ "$(id -u)" -eq 0 ] || skip "check-deb installs a package: run it as root"
if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
  skip "$package is already installed here; check-deb leaves it alone"
fi

work=$(mktemp -d /tmp/pgwire-check-deb.XXXXXX)
installed=0
proxy_pid=
created_logs_parent=0
source scripts/lib/pg.sh
cleanup() {
  local rc=$?
  if [ -n "$proxy_pid" ]; then
    kill -KILL "$proxy_pid" 2>/dev/null || true
    wait "$proxy_pid" 2>/dev/null || true
  fi
  if [ "${systemd:-0}" -eq 1 ]; then systemctl stop "pgproxy@$instance.service" 2>/dev/null || true; fi
  pg_stop
  rm -f "/etc/pgproxy/$instance.conf"
  rm -rf "/var/log/pgproxy/$instance"
  if [ "$created_logs_parent" -eq 1 ]; then rmdir /var/log/pgproxy 2>/dev/null || true; fi
  if [ "$installed" -eq 1 ]; then dpkg --purge "$package" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- 1. the package -----------------------------------------------------------------
if [ "${1:-}" != "--no-build" ]; then
  echo "== build (release) and cpack"
  JOBS=${JOBS:-2} nice -n 19 scripts/build.sh release >"$work/build.log" 2>&1 || { tail -n 30 "$work/build.log"; fail "build"; }
fi
rm -f "$build"/*.deb
(cd "$build" && nice -n 19 cpack -G DEB) >"$work/cpack.log" 2>&1 || { cat "$work/cpack.log"; fail "cpack -G DEB"; }
deb=$(ls "$build"/${package}_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || fail "cpack made no ${package}_*.deb"
version=$(dpkg-deb -f "$deb" Version)
pass "cpack -G DEB: $(basename "$deb") (Depends: $(dpkg-deb -f "$deb" Depends))"

# --- 2. installed --------------------------------------------------------------------
echo "== dpkg -i $(basename "$deb")"
installed=1
dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i (missing dependencies? apt-get install ./$(basename "$deb") resolves them)"; }
pass "dpkg -i"
# INSTALLED:PROGRAM; pgreplay is installed as pgwire-replay (cmake/PgwireInstall.cmake).
for pair in pgproxy:pgproxy pgdump-log:pgdump-log pgwire-replay:pgreplay; do
  tool=${pair%%:*} program=${pair#*:}
  [ "$(command -v "$tool")" = "/usr/bin/$tool" ] || fail "$tool is not /usr/bin/$tool on the PATH"
  [ "$("$tool" --version)" = "$program $version" ] || fail "$tool --version does not say $version"
  [ "$(man -w "$tool")" = "/usr/share/man/man1/$tool.1" ] || fail "man does not find $tool(1)"
  man -l "/usr/share/man/man1/$tool.1" >/dev/null 2>"$work/man.err" && [ ! -s "$work/man.err" ] ||
    { cat "$work/man.err"; fail "man $tool renders with warnings"; }
done
pass "pgproxy, pgdump-log, pgwire-replay in /usr/bin, version $version, man pages found and rendered"
unit=/usr/lib/systemd/system/pgproxy@.service
[ -f "$unit" ] || fail "no $unit"
conffiles=$(dpkg-query -W -f='${Conffiles}' "$package")
for f in /etc/pgproxy/main.conf /etc/pgproxy/pgproxy.conf.example; do
  [ -f "$f" ] || fail "no $f"
  grep -q " $f " <<<"$conffiles" || fail "$f is not a conffile"
done
pass "$unit, /etc/pgproxy/main.conf and pgproxy.conf.example (conffiles)"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "pgproxy@$instance.service" >"$work/verify.log" 2>&1 || true
  [ ! -s "$work/verify.log" ] || { cat "$work/verify.log"; fail "systemd-analyze verify pgproxy@$instance.service"; }
  pass "systemd-analyze verify pgproxy@$instance.service: $(systemd-analyze security --offline=true "$unit" 2>/dev/null |
    sed -n 's/^→ //p')"
else
  echo "SKIP: systemd-analyze is not installed: the unit is not verified"
fi
pgproxy --check-config --config /etc/pgproxy/main.conf --sql-log '' >"$work/check-main.out" ||
  { cat "$work/check-main.out"; fail "pgproxy --check-config --config /etc/pgproxy/main.conf"; }
pass "the shipped main.conf passes --check-config ($(tail -n 1 "$work/check-main.out"))"

# --- 3. the service ------------------------------------------------------------------
echo "== a throwaway PostgreSQL and the instance pgproxy@$instance"
pg_start >/dev/null
proxy_port=$(free_port)
conf=/etc/pgproxy/$instance.conf
logdir=/var/log/pgproxy/$instance
sed -e "s|^listen = .*|listen = \"127.0.0.1:$proxy_port\"|" \
  -e "s|^upstream = .*|upstream = \"127.0.0.1:$PG_PORT\"|" \
  -e "s|/var/log/pgproxy/main/|$logdir/|g" \
  -e "s|^# capture = |capture = |" /etc/pgproxy/main.conf >"$conf"
grep -q "^sql-log = \"$logdir/statements.log\"" "$conf" || fail "no SQL log in $logdir in $conf"
grep -q "^capture = \"$logdir/traffic.pgwcap\"" "$conf" || fail "no capture in $logdir in $conf"
exec_start=$(sed -n 's/^ExecStart=//p' "$unit" | sed "s/%i/$instance/g")
exec_reload=$(sed -n 's/^ExecReload=//p' "$unit")
[ "$exec_start" = "/usr/bin/pgproxy --config $conf" ] || fail "the unit's ExecStart is '$exec_start'"
sql_log=$logdir/statements.log
capture=$logdir/traffic.pgwcap

systemd=0
[ "$(ps -p 1 -o comm=)" = systemd ] && [ -d /run/systemd/system ] && systemd=1
if [ "$systemd" -eq 1 ]; then
  systemctl daemon-reload
  systemctl start "pgproxy@$instance.service" || { journalctl -u "pgproxy@$instance" --no-pager | tail -n 20; fail "systemctl start"; }
  proxy_pid_of() { systemctl show -p MainPID --value "pgproxy@$instance.service"; }
  reload() { systemctl reload "pgproxy@$instance.service"; }
  output() { journalctl -u "pgproxy@$instance" --no-pager; }
  pass "systemctl start pgproxy@$instance"
else
  # What DynamicUser=yes, LogsDirectory=pgproxy/%i, UMask=0077, NoNewPrivileges=yes and
  # CapabilityBoundingSet= give the process, without systemd: a user of the dynamic range
  # (61184-65519) that has no passwd entry, and its log directory.
  uid=65100
  while getent passwd "$uid" >/dev/null || getent group "$uid" >/dev/null; do uid=$((uid + 1)); done
  [ -d /var/log/pgproxy ] || { mkdir -m 0755 /var/log/pgproxy && created_logs_parent=1; }
  install -d -m 0755 -o "$uid" -g "$uid" "$logdir"
  service_env=(setpriv --reuid="$uid" --regid="$uid" --clear-groups --no-new-privs --inh-caps=-all --bounding-set=-all --)
  as_service() { (umask 0077 && exec "${service_env[@]}" "$@"); }
  as_service pgproxy --check-config --config "$conf" >"$work/check.out" 2>&1 ||
    { cat "$work/check.out"; fail "pgproxy --check-config --config $conf, as uid $uid"; }
  pass "pgproxy --check-config --config $conf as uid $uid: $(tail -n 1 "$work/check.out")"
  read -r -a start_argv <<<"$exec_start"
  # exec all the way down: $! is pgproxy itself, as MAINPID is.
  (umask 0077 && exec "${service_env[@]}" "${start_argv[@]}") >"$work/pgproxy.out" 2>&1 &
  proxy_pid=$!
  proxy_pid_of() { echo "$proxy_pid"; }
  reload() {
    local line=${exec_reload//\$MAINPID/$proxy_pid}
    local -a argv
    read -r -a argv <<<"$line"
    "${argv[@]}"
  }
  output() { cat "$work/pgproxy.out"; }
  echo "(systemd is not PID 1: the unit's ExecStart run by hand as uid $uid, no capabilities, no new privileges)"
fi
for _ in $(seq 100); do
  pg_isready -q -h 127.0.0.1 -p "$proxy_port" && break
  [ "$systemd" -eq 1 ] || kill -0 "$proxy_pid" 2>/dev/null || break
  sleep 0.1
done
pg_isready -q -h 127.0.0.1 -p "$proxy_port" || { output; fail "pgproxy@$instance does not accept connections on 127.0.0.1:$proxy_port"; }
pass "pgproxy@$instance serves 127.0.0.1:$proxy_port -> 127.0.0.1:$PG_PORT"

# --- 4. traffic, reload, stop ---------------------------------------------------------------
through_proxy() { psql -X -q -At -h 127.0.0.1 -p "$proxy_port" -U postgres -d postgres -c "$1"; }
wait_for_line() {  # wait_for_line FILE TEXT: the writer thread may still be writing
  for _ in $(seq 50); do
    grep -qF -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
got=$(through_proxy "SELECT 'check-deb-' || 6 * 7") || { output; fail "psql through pgproxy"; }
[ "$got" = "check-deb-42" ] || fail "psql through pgproxy said '$got'"
wait_for_line "$sql_log" "sql: SELECT 'check-deb-' || 6 * 7" || { output; fail "the statement is not in $sql_log"; }
pass "psql through pgproxy; the statement is in $sql_log"
for f in "$sql_log" "$capture"; do
  mode=$(stat -c %a "$f")
  [ "$mode" = 600 ] || fail "$f is mode $mode, not 0600"
done
[ "$systemd" -eq 1 ] || [ "$(stat -c %u "$sql_log")" = "$uid" ] || fail "$sql_log is not owned by the service's user"
pass "SQL log and capture are mode 0600"

mv "$sql_log" "$sql_log.1"
mv "$capture" "$capture.1"
reload || fail "ExecReload ($exec_reload)"
got=$(through_proxy "SELECT 'after-reload-' || 6 * 7") || { output; fail "psql through pgproxy after the reload"; }
[ "$got" = "after-reload-42" ] || fail "psql through pgproxy after the reload said '$got'"
wait_for_line "$sql_log" "sql: SELECT 'after-reload-' || 6 * 7" || { output; fail "after the reload, no new $sql_log with the statement"; }
grep -qF "after-reload" "$sql_log.1" && fail "after the reload, statements still go to the moved log"
[ "$(stat -c %a "$sql_log")" = 600 ] || fail "the reopened SQL log is not mode 0600"
[ -s "$capture" ] || fail "after the reload, no new capture"
output | grep -q 'SIGHUP: reopening the SQL log and the capture' || { output; fail "pgproxy did not say it reopened its files"; }
pass "ExecReload (SIGHUP): new SQL log and capture after a logrotate-style move, still serving"

if [ "$systemd" -eq 1 ]; then
  systemctl stop "pgproxy@$instance.service" || fail "systemctl stop"
  [ "$(systemctl show -p ExecMainStatus --value "pgproxy@$instance.service")" = 0 ] || fail "pgproxy did not exit 0"
else
  kill -TERM "$proxy_pid"
  rc=0
  wait "$proxy_pid" || rc=$?
  proxy_pid=
  [ "$rc" = 0 ] || { output; fail "pgproxy exited $rc on SIGTERM"; }
fi
output | grep -q '^.*exiting: sessions=' || { output; fail "pgproxy did not finish its files"; }
n=$(pgdump-log --no-progress "$capture.1" "$capture" | grep -c "sql: SELECT '") || true
[ "$n" = 2 ] || fail "pgdump-log finds $n of the 2 statements in the captures"
pass "SIGTERM: pgproxy exited 0; pgdump-log reads both statements from the two captures"

# --- 5. purge ------------------------------------------------------------------------
rm -f "$conf"
dpkg --purge "$package" >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "dpkg --purge"; }
installed=0
for f in /usr/bin/pgproxy /usr/bin/pgdump-log /usr/bin/pgwire-replay "$unit" /usr/share/man/man1/pgproxy.1 /etc/pgproxy; do
  [ ! -e "$f" ] || fail "$f is left after dpkg --purge"
done
pass "dpkg --purge leaves no file behind (logs in /var/log/pgproxy are kept on purpose)"
echo "check-deb: all passed in $(($(date +%s) - started)) s"
