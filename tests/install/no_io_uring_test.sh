#!/usr/bin/env bash
# pgproxy without io_uring: a build with -DPGWIRE_IO_URING=OFF links no
# liburing and its pgproxy says at start-up that it writes with send(). Where
# pkg-config finds no liburing the option defaults to OFF, and forcing it ON
# stops the configure with a clear message. Only pgproxy is built, without
# optimisation or sanitizers (the send() path itself runs in the integration
# tests, --no-io-uring); WORK_DIR is kept, so a later run rebuilds only what
# changed.
#
#   no_io_uring_test.sh SOURCE_DIR WORK_DIR CXX
set -euo pipefail
src=$1 work=$2 cxx=$3

fail() {
  echo "no_io_uring_test: FAIL: $*" >&2
  exit 1
}

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
common=("${generator[@]}" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=None -DPGWIRE_WERROR=ON
  -DPGWIRE_SANITIZE=OFF -DPGWIRE_TESTS=OFF -DPGWIRE_INSTALL=OFF)
mkdir -p "$work"

echo "== liburing hidden from pkg-config: PGWIRE_IO_URING defaults to OFF, forced ON fails"
# A pkg-config directory with what the build requires (libzstd, libpcap and
# what libpcap.pc requires) and no liburing.
mkdir -p "$work/no-pc"
for module in libzstd libpcap $(pkg-config --print-requires --print-requires-private libpcap | cut -d' ' -f1); do
  pc=$(pkg-config --variable=pcfiledir "$module")/$module.pc
  [ -f "$pc" ] || fail "pkg-config does not find $module.pc"
  ln -sf "$pc" "$work/no-pc/$module.pc"
done
hidden=(env PKG_CONFIG_LIBDIR="$work/no-pc" PKG_CONFIG_PATH=)
rm -rf "$work/hidden-default" "$work/hidden-on"
"${hidden[@]}" cmake -S "$src" -B "$work/hidden-default" "${common[@]}" >"$work/hidden-default.log" 2>&1 ||
  { cat "$work/hidden-default.log"; fail "configure without liburing"; }
grep -qx 'PGWIRE_IO_URING:BOOL=OFF' "$work/hidden-default/CMakeCache.txt" || fail "PGWIRE_IO_URING is not OFF without liburing"
if "${hidden[@]}" cmake -S "$src" -B "$work/hidden-on" "${common[@]}" -DPGWIRE_IO_URING=ON >"$work/hidden-on.log" 2>&1; then
  fail "-DPGWIRE_IO_URING=ON configured without liburing"
fi
grep -q "PGWIRE_IO_URING is ON but pkg-config does not find liburing" "$work/hidden-on.log" ||
  { cat "$work/hidden-on.log"; fail "no clear message for -DPGWIRE_IO_URING=ON without liburing"; }
rm -rf "$work/hidden-default" "$work/hidden-on"

echo "== -DPGWIRE_IO_URING=OFF: build pgproxy"
build=$work/build
cmake -S "$src" -B "$build" "${common[@]}" -DPGWIRE_IO_URING=OFF >"$work/configure.log" ||
  { cat "$work/configure.log"; fail "configure -DPGWIRE_IO_URING=OFF"; }
cmake --build "$build" --target pgproxy || fail "build pgproxy without io_uring"
proxy=$build/tools/pgproxy/pgproxy
if readelf -d "$proxy" | grep -q 'liburing'; then fail "pgproxy built without io_uring still links liburing"; fi

echo "== start-up of pgproxy without io_uring"
log=$work/pgproxy.err
"$proxy" --listen 127.0.0.1:0 --upstream 127.0.0.1:1 --sql-log '' 2>"$log" &
pid=$!
trap 'kill -KILL $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q 'writes:' "$log" && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.1
done
cat "$log"
grep -qF 'writes: send(), one call per socket (io_uring is not available: built without io_uring)' "$log" ||
  fail "pgproxy does not say it writes with send() because it was built without io_uring"
kill -TERM $pid
rc=0
wait $pid || rc=$?
trap - EXIT
[ "$rc" = 0 ] || fail "pgproxy exited $rc on SIGTERM"
echo "no_io_uring_test: OK"
