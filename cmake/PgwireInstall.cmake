# What `cmake --install <build> [--prefix P]` puts where (GNUInstallDirs):
#   bin/                        pgproxy, pgdump-log, pgwire-replay (the pgreplay target: Debian's
#                               package pgreplay, another replayer, owns bin/pgreplay)
#   include/pgwire/             the public headers, version.hpp included
#   lib/libpgwire.a
#   lib/cmake/pgwire/           pgwireConfig.cmake, pgwireConfigVersion.cmake, pgwireTargets.cmake:
#                               find_package(pgwire) and target pgwire::pgwire
#   lib/pkgconfig/pgwire.pc     pkg-config --static --cflags --libs pgwire
#   share/man/man1/             pgproxy.1, pgdump-log.1, pgwire-replay.1 (docs/man/)
#   etc/pgproxy/                main.conf (kept if there already) and pgproxy.conf.example
#   lib/systemd/system/         pgproxy@.service, naming the installed pgproxy and etc/pgproxy
# etc/ is /etc when the prefix is /usr (the .deb) or /.
# tests/install/ builds a small program against such a tree. Two components,
# the two .deb packages of cmake/PgwirePackage.cmake: `tools` (the tools, their
# man pages, pgproxy's configuration and unit) and `dev` (libpgwire, headers,
# CMake package, pgwire.pc); `cmake --install` without --component puts both.
include(CMakePackageConfigHelpers)

set(PGWIRE_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/pgwire)

install(TARGETS pgproxy pgdump-log RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT tools)
# Installed under another name: /usr/bin/pgreplay is Debian's package pgreplay
# (a replayer of PostgreSQL's own logs, which users of this toolkit also run on
# its csvlog output), and a .deb may not take another package's file. The build
# tree keeps the name pgreplay. cpack strips the program like the targets.
install(PROGRAMS $<TARGET_FILE:pgreplay> DESTINATION ${CMAKE_INSTALL_BINDIR} RENAME ${PGWIRE_REPLAY_INSTALL_NAME}
        COMPONENT tools)

install(TARGETS pgwire EXPORT pgwireTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
  FILE_SET HEADERS DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)
install(EXPORT pgwireTargets
  NAMESPACE pgwire::
  FILE pgwireTargets.cmake
  DESTINATION ${PGWIRE_INSTALL_CMAKEDIR}
  COMPONENT dev)

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/pgwireConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/pgwireConfig.cmake
  INSTALL_DESTINATION ${PGWIRE_INSTALL_CMAKEDIR})
# Before 1.0 a minor version may change the API: only the same MAJOR.MINOR matches.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cmake/pgwireConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cmake/pgwireConfig.cmake ${PROJECT_BINARY_DIR}/cmake/pgwireConfigVersion.cmake
  DESTINATION ${PGWIRE_INSTALL_CMAKEDIR}
  COMPONENT dev)

# pgwire.pc names the prefix it is installed under, which `cmake --install
# --prefix P` only decides at install time: the file is configured here with
# everything else and finished by the install step.
set(PGWIRE_PC_PREFIX "@PGWIRE_PC_PREFIX@")  # kept for the install step
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(PGWIRE_PC_${dir} "${CMAKE_INSTALL_${dir}}")
  else()
    set(PGWIRE_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()
configure_file(${CMAKE_CURRENT_LIST_DIR}/pgwire.pc.in ${PROJECT_BINARY_DIR}/cmake/pgwire.pc.in @ONLY)
install(CODE "
  set(PGWIRE_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  configure_file(\"${PROJECT_BINARY_DIR}/cmake/pgwire.pc.in\" \"${PROJECT_BINARY_DIR}/cmake/pgwire.pc\" @ONLY)
" COMPONENT dev)
install(FILES ${PROJECT_BINARY_DIR}/cmake/pgwire.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)

install(FILES ${PGWIRE_MAN_PAGES} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT tools)
install(FILES ${PGWIRE_REPLAY_MAN_PAGE} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 RENAME ${PGWIRE_REPLAY_INSTALL_NAME}.1
        COMPONENT tools)

# pgproxy as a service (packaging/): the example configuration, also as the
# configuration of the instance pgproxy@main, and the systemd template unit.
# Where etc/ is, and so what the unit's ExecStart names, depends on the prefix,
# which `cmake --install --prefix` and cpack only give at install time: both
# are decided then, as GNUInstallDirs would (prefix /usr or /: /etc).
install(CODE "
  set(confdir \"${CMAKE_INSTALL_SYSCONFDIR}\")
  if(NOT IS_ABSOLUTE \"\${confdir}\")
    if(CMAKE_INSTALL_PREFIX STREQUAL \"/usr\" OR CMAKE_INSTALL_PREFIX STREQUAL \"/\")
      set(confdir \"/\${confdir}\")
    else()
      set(confdir \"\${CMAKE_INSTALL_PREFIX}/\${confdir}\")
    endif()
  endif()
  set(PGPROXY_CONFDIR \"\${confdir}/pgproxy\")
  set(PGPROXY_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
  if(NOT IS_ABSOLUTE \"\${PGPROXY_BINDIR}\")
    set(PGPROXY_BINDIR \"\${CMAKE_INSTALL_PREFIX}/\${PGPROXY_BINDIR}\")
  endif()
  file(INSTALL \"${PROJECT_SOURCE_DIR}/packaging/pgproxy.conf.example\" DESTINATION \"\${PGPROXY_CONFDIR}\")
  # An edited configuration is never overwritten.
  if(EXISTS \"\$ENV{DESTDIR}\${PGPROXY_CONFDIR}/main.conf\")
    message(STATUS \"Keeping: \$ENV{DESTDIR}\${PGPROXY_CONFDIR}/main.conf\")
  else()
    file(INSTALL \"${PROJECT_SOURCE_DIR}/packaging/pgproxy.conf.example\" DESTINATION \"\${PGPROXY_CONFDIR}\"
         RENAME main.conf)
  endif()
  configure_file(\"${PROJECT_SOURCE_DIR}/packaging/pgproxy@.service.in\"
                 \"${PROJECT_BINARY_DIR}/packaging/pgproxy@.service\" @ONLY)
  file(INSTALL \"${PROJECT_BINARY_DIR}/packaging/pgproxy@.service\"
       DESTINATION \"\${CMAKE_INSTALL_PREFIX}/lib/systemd/system\")
" COMPONENT tools)
