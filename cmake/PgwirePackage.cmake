# `cpack -G DEB` in a build directory makes two packages of what
# `cmake --install` puts, under /usr (cmake/PgwireInstall.cmake's components):
#   pgwire-toolkit_<VERSION>_<ARCH>.deb   the tools, their man pages,
#       /etc/pgproxy (conffiles) and /usr/lib/systemd/system/pgproxy@.service
#   libpgwire-dev_<VERSION>_<ARCH>.deb    libpgwire.a, its headers, CMake
#       package and pgwire.pc, for building other tools
# The tools' dependencies are computed by dpkg-shlibdeps (dpkg-dev) from the
# binaries. The maintainer scripts (packaging/deb/) only tell a running
# systemd: reload the units, restart the running instances after an upgrade,
# stop them before a removal. scripts/check-deb.sh installs pgwire-toolkit and
# runs the service from it.
set(CPACK_PACKAGE_NAME pgwire-toolkit)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR pgwire-toolkit)
set(PGWIRE_PACKAGE_MAINTAINER "pgwire-toolkit maintainers <pgwire-toolkit@localhost>"
    CACHE STRING "Maintainer field of the .deb packages")
set(CPACK_PACKAGE_CONTACT ${PGWIRE_PACKAGE_MAINTAINER})
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_COMPONENTS_ALL tools dev)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION database)

set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME pgwire-toolkit)
set(CPACK_COMPONENT_TOOLS_DESCRIPTION
    "PostgreSQL wire-protocol toolkit: pgproxy, pgdump-log, pgwire-replay
pgproxy is a transparent PostgreSQL proxy that writes every SQL statement to
a log, with its parameters, duration and outcome, and records the traffic to
a capture file; pgdump-log decodes captures offline and pgwire-replay (pgreplay
in the sources; Debian's pgreplay package owns that name) replays them against
another server. pgproxy runs as a sandboxed systemd service, one
instance per configuration file: pgproxy@.service.")
set(CPACK_DEBIAN_TOOLS_PACKAGE_SHLIBDEPS ON)

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libpgwire-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_COMPONENT_DEV_DESCRIPTION
    "PostgreSQL wire-protocol library of pgwire-toolkit (static, headers)
libpgwire frames, decodes and encodes the PostgreSQL wire protocol, tracks
statements and their outcomes, and reads and writes pgwire-toolkit captures.
find_package(pgwire) or pkg-config --static pgwire.")
# What a program linking the static library links too (pgwire.pc's Requires).
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libfmt-dev, libssl-dev")

# dpkg's part besides the files: the configuration is conffiles (an upgrade
# never overwrites an edited one), and the maintainer scripts.
if(IS_ABSOLUTE "${CMAKE_INSTALL_SYSCONFDIR}")
  set(PGWIRE_DEB_CONFDIR "${CMAKE_INSTALL_SYSCONFDIR}/pgproxy")
else()
  set(PGWIRE_DEB_CONFDIR "/${CMAKE_INSTALL_SYSCONFDIR}/pgproxy")
endif()
file(WRITE ${PROJECT_BINARY_DIR}/packaging/deb/conffiles
     "${PGWIRE_DEB_CONFDIR}/main.conf\n${PGWIRE_DEB_CONFDIR}/pgproxy.conf.example\n")
set(CPACK_DEBIAN_TOOLS_PACKAGE_CONTROL_EXTRA
    ${PROJECT_BINARY_DIR}/packaging/deb/conffiles ${PROJECT_SOURCE_DIR}/packaging/deb/postinst
    ${PROJECT_SOURCE_DIR}/packaging/deb/prerm ${PROJECT_SOURCE_DIR}/packaging/deb/postrm)
set(CPACK_DEBIAN_TOOLS_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)

# A source package (make package_source) leaves out build trees and git's files.
set(CPACK_SOURCE_IGNORE_FILES "/build/" "/\\\\.git/")
include(CPack)
