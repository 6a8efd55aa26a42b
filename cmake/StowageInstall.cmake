# The installed CMake package: find_package(stowage CONFIG) gives
# stowage::core, stowage::sdk, stowage::format, stowage::conformance and
# stowage::conformance-runner, plus stowage_add_plugin() and
# stowage_add_conformance_test(). The targets join the export set
# stowageTargets where they are defined; this file writes the package files.
#
# Layout of an install (libdir is lib, lib64 or lib/<multiarch>, as
# GNUInstallDirs says):
#   bin/stowage, bin/stowage-conformance
#   include/stowage/*.h, *.hpp
#   <libdir>/libstowage_core.so.0, libstowage_conformance.so.0, libstowage_format.a
#   <libdir>/stowage/plugins/     plugins and manifests; the core finds them
#                                 beside itself, so the prefix can move
#   <libdir>/stowage/conformance/ the suite's shim plugin
#   <libdir>/cmake/stowage/       this package
#   share/stowage/conformance/fixtures/  the suite's golden models
include(CMakePackageConfigHelpers)
set(_stowage_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/stowage)

install(EXPORT stowageTargets NAMESPACE stowage:: DESTINATION ${_stowage_cmake_dir})
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/stowageConfig.cmake.in
  ${CMAKE_BINARY_DIR}/cmake/stowageConfig.cmake
  INSTALL_DESTINATION ${_stowage_cmake_dir}
  PATH_VARS STOWAGE_INSTALL_PLUGIN_DIR)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/cmake/stowageConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES
  ${CMAKE_BINARY_DIR}/cmake/stowageConfig.cmake
  ${CMAKE_BINARY_DIR}/cmake/stowageConfigVersion.cmake
  ${CMAKE_SOURCE_DIR}/cmake/StowagePluginHelpers.cmake
  ${CMAKE_SOURCE_DIR}/cmake/StowageManifest.cmake
  DESTINATION ${_stowage_cmake_dir})
