# Install rules (`cmake --install build [--prefix P]`): the programs, the client libraries with
# their headers and pkg-config file, the default configuration as an example, the documentation
# and the examples. Included by the top-level CMakeLists.txt after every target exists.
include(GNUInstallDirs)

# The daemon is a system program (section 8): sbin.
install(TARGETS sscardd RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(TARGETS sscardctl sscard-sim RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# The unversioned libSSCardDriver.so link goes with the runtime: legacy applications (JNA,
# P/Invoke, dlopen) load that name.
install(TARGETS sscard SSCardDriver LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/sscard/error.h
              ${PROJECT_SOURCE_DIR}/include/sscard/client.h
              ${PROJECT_SOURCE_DIR}/include/sscard/SSCardDriver.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/sscard)
install(FILES ${PROJECT_BINARY_DIR}/lib/sscard.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
install(FILES ${PROJECT_SOURCE_DIR}/conf/sscardd.conf
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}
        FILES_MATCHING PATTERN "*.md" PATTERN "*.yml")
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/examples/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# The service (issue 19): the systemd units, the sysusers.d and tmpfiles.d entries, the udev rule
# for USB CCID readers, and the offline drop-in as an example. Under the prefix by default; the
# Debian build puts units and rules where Debian 12 keeps them (/lib/systemd/system, /lib/udev).
set(SSC_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "Where systemd units go (relative: under the prefix)")
set(SSC_UDEV_RULESDIR "lib/udev/rules.d" CACHE STRING
    "Where udev rules go (relative: under the prefix)")
set(SSC_SYSUSERSDIR "lib/sysusers.d" CACHE STRING "Where sysusers.d files go")
set(SSC_TMPFILESDIR "lib/tmpfiles.d" CACHE STRING "Where tmpfiles.d files go")
set(SBINDIR ${CMAKE_INSTALL_FULL_SBINDIR})
configure_file(${PROJECT_SOURCE_DIR}/systemd/sscardd.service
               ${PROJECT_BINARY_DIR}/systemd/sscardd.service @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/systemd/sscardd.service
              ${PROJECT_SOURCE_DIR}/systemd/sscardd.socket
        DESTINATION ${SSC_SYSTEMD_UNITDIR})
install(FILES ${PROJECT_SOURCE_DIR}/systemd/sscard.sysusers DESTINATION ${SSC_SYSUSERSDIR}
        RENAME sscard.conf)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/sscard.tmpfiles DESTINATION ${SSC_TMPFILESDIR}
        RENAME sscard.conf)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/60-sscard.rules DESTINATION ${SSC_UDEV_RULESDIR})
install(FILES ${PROJECT_SOURCE_DIR}/systemd/sscardd-offline.conf
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
