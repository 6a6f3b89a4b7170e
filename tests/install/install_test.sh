#!/usr/bin/env bash
# Installs a build tree into a fresh prefix and uses it as an outside project
# would: the installed tools print the project's version, the man pages, the
# configuration and the systemd unit are under the prefix (the unit naming the
# installed pgproxy and configuration), and a small program
# (consumer/) built against the installed libpgwire — once through
# find_package(pgwire), once through pkg-config — prints the statements of
# recorded captures exactly as pgdump-log's golden outputs have them.
#
#   install_test.sh BUILD_DIR WORK_DIR SOURCE_DIR VERSION CXX [EXTRA_FLAGS]
# EXTRA_FLAGS: compile and link flags the build tree was made with that a
# consumer must share (the sanitizers of an asan build).
set -euo pipefail
build=$1 work=$2 src=$3 version=$4 cxx=$5 extra=${6:-}

fail() {
  echo "install_test: FAIL: $*" >&2
  exit 1
}

prefix=$work/prefix
rm -rf "$work"
mkdir -p "$work"

echo "== cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log"; fail "cmake --install"; }

# What the tree must hold.
for f in bin/pgproxy bin/pgdump-log bin/pgwire-replay lib/libpgwire.a include/pgwire/version.hpp \
  lib/cmake/pgwire/pgwireConfig.cmake lib/cmake/pgwire/pgwireConfigVersion.cmake \
  lib/cmake/pgwire/pgwireTargets.cmake lib/pkgconfig/pgwire.pc share/man/man1/pgproxy.1 share/man/man1/pgdump-log.1 \
  share/man/man1/pgwire-replay.1 etc/pgproxy/main.conf etc/pgproxy/pgproxy.conf.example lib/systemd/system/pgproxy@.service; do
  [ -e "$prefix/$f" ] || fail "$f is not installed"
done
for h in "$src"/libpgwire/include/pgwire/*.hpp; do
  cmp -s "$h" "$prefix/include/pgwire/$(basename "$h")" || fail "include/pgwire/$(basename "$h") is not the source header"
done
# fmt is a private dependency: no installed header may need it.
if grep -rn 'fmt/' "$prefix/include/pgwire"; then fail "an installed header includes fmt"; fi
# INSTALLED:PROGRAM; pgreplay is installed as pgwire-replay (cmake/PgwireInstall.cmake).
for pair in pgproxy:pgproxy pgdump-log:pgdump-log pgwire-replay:pgreplay; do
  tool=${pair%%:*} program=${pair#*:}
  got=$("$prefix/bin/$tool" --version) || fail "$tool --version exited $?"
  [ "$got" = "$program $version" ] || fail "installed $tool --version says '$got', expected '$program $version'"
done
[ ! -e "$prefix/bin/pgreplay" ] || fail "bin/pgreplay is installed: it would take Debian's pgreplay's place"

echo "== pgproxy as a service, under the prefix"
for f in main.conf pgproxy.conf.example; do
  cmp -s "$src/packaging/pgproxy.conf.example" "$prefix/etc/pgproxy/$f" || fail "etc/pgproxy/$f is not packaging/pgproxy.conf.example"
done
unit=$prefix/lib/systemd/system/pgproxy@.service
exec_start=$(grep '^ExecStart=' "$unit") || fail "no ExecStart in $unit"
[ "$exec_start" = "ExecStart=$prefix/bin/pgproxy --config $prefix/etc/pgproxy/%i.conf" ] ||
  fail "the unit says '$exec_start', not the installed pgproxy and configuration"
if command -v systemd-analyze >/dev/null; then
  # --man=no: the page of Documentation= is not where man looks.
  systemd-analyze verify --man=no "$unit" 2>&1 | tee "$work/verify.log"
  [ ! -s "$work/verify.log" ] || fail "systemd-analyze verify $unit"
else
  echo "systemd-analyze not installed: the unit is not verified"
fi
got=$("$prefix/bin/pgproxy" --check-config --config "$prefix/etc/pgproxy/main.conf" --sql-log "$work/statements.log") ||
  fail "the installed main.conf does not pass --check-config"
[ "$(echo "$got" | head -n 1)" = "pgproxy: configuration OK" ] || fail "--check-config said: $got"
for tool in pgproxy pgdump-log pgwire-replay; do
  [ "$(MANPATH=$prefix/share/man man -w "$tool")" = "$prefix/share/man/man1/$tool.1" ] || fail "man does not find $tool(1) in $prefix/share/man"
done
# Installing again keeps a configuration the administrator edited.
echo '# edited' >>"$prefix/etc/pgproxy/main.conf"
cmake --install "$build" --prefix "$prefix" >"$work/install-again.log" || { cat "$work/install-again.log"; fail "cmake --install again"; }
[ "$(tail -n 1 "$prefix/etc/pgproxy/main.conf")" = "# edited" ] || fail "installing again overwrote etc/pgproxy/main.conf"
echo "service files: as expected"

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
captures=(psql_multi pgbench_prepared pipeline_error)
check_consumer() {  # check_consumer BINARY HOW
  local bin=$1 how=$2 name
  got=$("$bin" --version)
  [ "$got" = "$version $version" ] || fail "$how: consumer --version says '$got', expected '$version $version'"
  for name in "${captures[@]}"; do
    "$bin" "$src/corpus/captures/$name.pgwcap" >"$work/$name.$how.out" || fail "$how: consumer exited $? on $name"
    [ -s "$work/$name.$how.out" ] || fail "$how: no statements printed for $name"
    diff -u "$src/corpus/expected/$name.sql" "$work/$name.$how.out" || fail "$how: statements of $name differ"
  done
  echo "$how: statements of ${captures[*]} as expected"
}

echo "== consumer through find_package(pgwire $version EXACT)"
cmake -S "$src/tests/install/consumer" -B "$work/consumer-cmake" "${generator[@]}" \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DPGWIRE_EXPECTED_VERSION="$version" \
  -DCMAKE_CXX_FLAGS="$extra" -DCMAKE_EXE_LINKER_FLAGS="$extra" >"$work/consumer-cmake.log" ||
  { cat "$work/consumer-cmake.log"; fail "consumer: configure"; }
grep -qF -- "-- pgwire $version from $prefix/lib/cmake/pgwire" "$work/consumer-cmake.log" ||
  { cat "$work/consumer-cmake.log"; fail "consumer: pgwire not found in the installed tree"; }
cmake --build "$work/consumer-cmake" || fail "consumer: build"
check_consumer "$work/consumer-cmake/pgwire-consumer" cmake

# The version file: another MAJOR.MINOR is refused.
if cmake -S "$src/tests/install/consumer" -B "$work/consumer-wrong-version" "${generator[@]}" \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
  -DPGWIRE_EXPECTED_VERSION=999.0 >"$work/consumer-wrong-version.log" 2>&1; then
  fail "find_package(pgwire 999.0 EXACT) succeeded"
fi
grep -qF "pgwireConfig.cmake, version: $version" "$work/consumer-wrong-version.log" ||
  { cat "$work/consumer-wrong-version.log"; fail "find_package(pgwire 999.0) failed for another reason"; }

echo "== consumer through pkg-config"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
[ "$(pkg-config --modversion pgwire)" = "$version" ] || fail "pkg-config --modversion pgwire"
# --static: libpgwire is a static library, so its private dependencies are linked too.
pc=$(pkg-config --static --cflags --libs pgwire) || fail "pkg-config --cflags --libs pgwire"
read -r -a pc_flags <<<"$pc"
echo "pkg-config: ${pc_flags[*]}"
read -r -a extra_flags <<<"$extra"
"$cxx" -std=c++20 "${extra_flags[@]}" "$src/tests/install/consumer/main.cpp" -o "$work/pgwire-consumer-pc" \
  "${pc_flags[@]}" || fail "consumer: build with pkg-config's flags"
check_consumer "$work/pgwire-consumer-pc" pkg-config

echo "install_test: OK"
