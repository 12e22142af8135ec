# Installs libwinnow, its public headers (include/winnow/*.h, the C header winnow.h), the winnow CLI and a CMake
# package: find_package(winnow) gives the target winnow::winnow.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS winnow_lib EXPORT winnowTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS winnow RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES include/winnow/winnow.h include/winnow/params.h include/winnow/error.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/winnow)
install(FILES bindings/c/winnow.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(PROGRAMS models/fetch-default-model.sh DESTINATION ${CMAKE_INSTALL_DATADIR}/winnow)

set(winnow_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/winnow)
install(EXPORT winnowTargets NAMESPACE winnow:: DESTINATION ${winnow_cmake_dir})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/winnowConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/winnowConfig.cmake
  INSTALL_DESTINATION ${winnow_cmake_dir})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/winnowConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/winnowConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/winnowConfigVersion.cmake DESTINATION ${winnow_cmake_dir})
