#!/usr/bin/env bash
# Installs everything the build, the tests and the benchmarks need, from
# Debian 12's packages. Idempotent: packages already present are left alone,
# and --no-upgrade keeps a running PostgreSQL from being upgraded under its
# processes.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config clang-format clang-tidy
  libcli11-dev libfmt-dev libgtest-dev libgmock-dev libssl-dev liburing-dev libzstd-dev zstd
  postgresql postgresql-contrib postgresql-client
  sysbench pgbouncer python3 python3-prometheus-client time bc openssl
  man-db dpkg-dev chromium
  libpcap-dev tcpdump tshark pgbadger pgreplay
  linux-perf
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-upgrade --no-install-recommends "${missing[@]}" >/dev/null
