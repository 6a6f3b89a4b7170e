#!/usr/bin/env bash
# pgdump-log against tshark on the same traffic, in one run.
#
# Records DURATION seconds (default 30) of `pgbench -S -M extended -c 10`
# through pgproxy (capture file) while tcpdump captures the proxy's upstream
# port (pcap). Then times `pgdump-log --format sql` on the capture (median of
# 7 runs, wall and CPU time) and `tshark -r PCAP -Y pgsql -T fields -e
# pgsql.query` on the pcap (median of 3), and prints statements/s for both, the ratio, pgdump-log's MB/s and its peak
# RSS (also on a capture repeated 4x, to show RSS does not grow with size).
# Then the pcap side (issue 14), on the same files: pgdump-log reading the
# pcap itself (--port, statements/s against tshark's on that pcap, median of
# 7), its peak RSS on the pcap and on 4 copies merged (four times the input
# and the connections), and the export `pgdump-log --format pcap -o FILE` of
# the capture (MB/s of capture, median of 7).
# DURATION=300 records a pcap over 1 GB (about 1.4 GB, and a 2.2 GB capture): issue 14's memory
# and export figures on a 1 GB input; that run takes about 30 minutes, tshark most of them.
# Loopback only; everything stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-30}
scripts/install-deps.sh
command -v tshark >/dev/null || {
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-upgrade tshark >/dev/null
}
scripts/build.sh release >/dev/null
bin=build/release/tools
source scripts/lib/pg.sh
work=$(mktemp -d /tmp/pgwire-bench.XXXXXX)
cleanup() {
  [ -n "${proxy_pid:-}" ] && kill "$proxy_pid" 2>/dev/null || true
  [ -n "${tcpdump_pid:-}" ] && kill "$tcpdump_pid" 2>/dev/null || true
  pg_stop
  rm -rf "$work"
}
trap cleanup EXIT
pg_start
pgbench -i -q -s 10 >/dev/null 2>&1
proxy_port=$(free_port)
"$bin/pgproxy/pgproxy" --listen 127.0.0.1:"$proxy_port" --upstream 127.0.0.1:"$PG_PORT" \
  --capture "$work/bench.pgwcap" --capture-backend --sql-log /dev/null --stats-interval 0 2>"$work/proxy.err" &
proxy_pid=$!
# tcpdump rather than tshark for the recording: a 64 MiB kernel buffer, so
# that no packet is dropped (a dropped packet is damage to pgdump-log).
tcpdump -i lo -B 65536 -s 0 -U -w "$work/bench.pcap" "tcp port $PG_PORT" 2>"$work/tcpdump.err" &
tcpdump_pid=$!
sleep 2
pgbench -h 127.0.0.1 -p "$proxy_port" -S -M extended -c 10 -j 2 -T "$DURATION" -n >"$work/pgbench.out" 2>&1
sleep 1
kill -TERM "$tcpdump_pid"; wait "$tcpdump_pid" 2>/dev/null || true; tcpdump_pid=
kill -TERM "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true; proxy_pid=
tps=$(grep -Eo 'tps = [0-9.]+' "$work/pgbench.out" | head -1)
cap_bytes=$(stat -c %s "$work/bench.pgwcap")
echo "recorded: pgbench -S -M extended -c 10 for ${DURATION}s through pgproxy ($tps); capture $((cap_bytes >> 20)) MB, pcap $(($(stat -c %s "$work/bench.pcap") >> 20)) MB"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_runs() {  # time_runs N CMD...: the median wall time in seconds of N runs of CMD
  local n=$1
  shift
  for _ in $(seq "$n"); do
    local t0 t1
    t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
  done | median
}
cpu_runs() {  # cpu_runs N CMD...: the median CPU time (user + system) in seconds of N runs of CMD
  local n=$1
  shift
  for _ in $(seq "$n"); do
    /usr/bin/time -o "$work/time.out" -f "%U %S" "$@" >/dev/null 2>&1
    awk '{print $1 + $2}' "$work/time.out"
  done | median
}
stmts_ours=$("$bin/pgdump-log/pgdump-log" --no-progress "$work/bench.pgwcap" | wc -l)
stmts_tshark=$(tshark -r "$work/bench.pcap" -d "tcp.port==$PG_PORT,pgsql" -Y pgsql.query -T fields -e pgsql.query 2>/dev/null | grep -c . || true)
# pgdump-log takes well under a second: 7 runs, for a median that the machine's noise moves less.
t_ours=$(time_runs 7 "$bin/pgdump-log/pgdump-log" --no-progress "$work/bench.pgwcap")
c_ours=$(cpu_runs 7 "$bin/pgdump-log/pgdump-log" --no-progress "$work/bench.pgwcap")
t_tshark=$(time_runs 3 tshark -r "$work/bench.pcap" -d "tcp.port==$PG_PORT,pgsql" -Y pgsql -T fields -e pgsql.query)
for i in 1 2 3 4; do cat "$work/bench.pgwcap"; done >/dev/null  # warm the cache
rss_1=$( { /usr/bin/time -f %M "$bin/pgdump-log/pgdump-log" --no-progress "$work/bench.pgwcap" >/dev/null; } 2>&1 | tail -1)
# The same capture four times over, merged: 4x the input, RSS should not follow.
rss_4=$( { /usr/bin/time -f %M "$bin/pgdump-log/pgdump-log" --no-progress "$work/bench.pgwcap" "$work/bench.pgwcap" \
  "$work/bench.pgwcap" "$work/bench.pgwcap" >/dev/null; } 2>&1 | tail -1)
awk -v so="$stmts_ours" -v st="$stmts_tshark" -v to="$t_ours" -v tt="$t_tshark" -v b="$cap_bytes" \
    -v r1="$rss_1" -v r4="$rss_4" -v co="$c_ours" 'BEGIN {
  printf "pgdump-log --format sql: %d statements in %.3f s = %.0f statements/s, %.0f MB/s of capture\n", so, to, so/to, b/1048576/to
  printf "pgdump-log CPU time (one thread, user + system): %.3f s = %.0f MB/s of capture\n", co, b/1048576/co
  printf "tshark -Y pgsql -e pgsql.query: %d queries in %.3f s = %.0f statements/s\n", st, tt, st/tt
  printf "ratio (pgdump-log / tshark statements/s): %.1fx\n", (so/to)/(st/tt)
  printf "pgdump-log peak RSS: %d KiB on the capture, %d KiB on 4 copies merged\n", r1, r4
}'

# --- the pcap side ------------------------------------------------------------------------
pcap_bytes=$(stat -c %s "$work/bench.pcap")
grep -E 'dropped by kernel' "$work/tcpdump.err" | sed 's/^/tcpdump: /' || true
dump_pcap=("$bin/pgdump-log/pgdump-log" --no-progress --port "$PG_PORT")
stmts_pcap=$( { "${dump_pcap[@]}" "$work/bench.pcap" 2>"$work/pcap.err" || echo "exit status $?" >>"$work/pcap.err"; } | wc -l)
head -3 "$work/pcap.err" | sed 's/^/pgdump-log on the pcap: /' 
t_pcap=$(time_runs 7 "${dump_pcap[@]}" "$work/bench.pcap")
c_pcap=$(cpu_runs 7 "${dump_pcap[@]}" "$work/bench.pcap")
peak_rss() {  # peak_rss CMD...: the peak RSS in KiB of one run of CMD (whatever its exit status)
  /usr/bin/time -o "$work/rss.out" -f %M "$@" >/dev/null 2>&1 || true
  tail -1 "$work/rss.out"
}
rss_p1=$(peak_rss "${dump_pcap[@]}" "$work/bench.pcap")
rss_p4=$(peak_rss "${dump_pcap[@]}" "$work/bench.pcap" "$work/bench.pcap" "$work/bench.pcap" "$work/bench.pcap")
t_export=$(time_runs 7 "$bin/pgdump-log/pgdump-log" --no-progress --format pcap -o "$work/export.pcap" "$work/bench.pgwcap")
export_bytes=$(stat -c %s "$work/export.pcap")
awk -v sp="$stmts_pcap" -v st="$stmts_tshark" -v tp="$t_pcap" -v tt="$t_tshark" -v pb="$pcap_bytes" -v cp="$c_pcap" \
    -v r1="$rss_p1" -v r4="$rss_p4" -v te="$t_export" -v cb="$cap_bytes" -v eb="$export_bytes" 'BEGIN {
  printf "pcap: %d MB recorded by tcpdump on the server port\n", pb/1048576
  printf "pgdump-log --port on the pcap: %d statements in %.3f s = %.0f statements/s, %.0f MB/s of pcap (CPU %.3f s)\n", sp, tp, sp/tp, pb/1048576/tp, cp
  printf "ratio on the same pcap (pgdump-log / tshark statements/s): %.1fx\n", (sp/tp)/(st/tt)
  printf "pgdump-log peak RSS on pcap: %d KiB on the pcap (%d MB), %d KiB on 4 copies merged (%d MB)\n", r1, pb/1048576, r4, 4*pb/1048576
  printf "pgdump-log --format pcap -o: %d MB of capture in %.3f s = %.0f MB/s (pcap written: %d MB)\n", cb/1048576, te, cb/1048576/te, eb/1048576
}'
