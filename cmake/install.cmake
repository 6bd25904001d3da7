# Install rules (`cmake --install build [--prefix P]`): the programs, the client libraries with
# their headers and pkg-config file, the default configuration as an example, the documentation
# and the examples. Included by the top-level CMakeLists.txt after every target exists.
include(GNUInstallDirs)

foreach(prog sscardd sscardctl sscard-sim)
  if(TARGET ${prog})
    install(TARGETS ${prog} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()
foreach(lib sscard SSCardDriver)
  if(TARGET ${lib})
    # The unversioned libSSCardDriver.so link goes with the runtime: legacy applications (JNA,
    # P/Invoke, dlopen) load that name.
    install(TARGETS ${lib} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  endif()
endforeach()
install(FILES ${PROJECT_SOURCE_DIR}/include/sscard/error.h
              ${PROJECT_SOURCE_DIR}/include/sscard/client.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/sscard)
if(EXISTS ${PROJECT_SOURCE_DIR}/include/sscard/SSCardDriver.h)
  install(FILES ${PROJECT_SOURCE_DIR}/include/sscard/SSCardDriver.h
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/sscard)
endif()
install(FILES ${PROJECT_BINARY_DIR}/lib/sscard.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
install(FILES ${PROJECT_SOURCE_DIR}/conf/sscardd.conf
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}
        FILES_MATCHING PATTERN "*.md")
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/examples/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
