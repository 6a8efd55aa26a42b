# The SDK as a third party gets it: installs the stowage build tree into a
# temporary prefix, builds samples/custom-plugin (sqlite://) and
# samples/host-app against that prefix alone, runs the conformance suite on
# the sqlite plugin through the sample's own CTest, installs the plugin
# beside stowage, and uses it from the installed command and the host app.
#
#   cmake -DBUILD_DIR=<stowage build> -DSOURCE_DIR=<stowage source>
#         -DLIBDIR=<CMAKE_INSTALL_LIBDIR> -DWORK=<scratch folder>
#         [-DLAUNCHER=<compiler launcher>] [-DBUILD_TYPE=<type>]
#         [-DSANITIZE_FLAGS=<-fsanitize=... for the sample builds>]
#         -P out_of_tree_test.cmake
cmake_minimum_required(VERSION 3.25)
file(REMOVE_RECURSE "${WORK}")
set(prefix "${WORK}/prefix")
set(plugins "${prefix}/${LIBDIR}/stowage/plugins")
set(clean_env ${CMAKE_COMMAND} -E env --unset=STOWAGE_PLUGIN_PATH --unset=STOWAGE_CONFIG
              --unset=STOWAGE_TEST_PLUGIN --unset=STOWAGE_TEST_SCHEME --unset=STOWAGE_TEST_ROOT_URL)

function(step what)
  message("-- ${what}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  set(step_output "${out}" PARENT_SCOPE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}")
  endif()
endfunction()

function(require_output what regex)
  if(NOT step_output MATCHES "${regex}")
    message(FATAL_ERROR "${what}: the output does not match ${regex}:\n${step_output}")
  endif()
endfunction()

# 1. Install.
step("cmake --install into ${prefix}" ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}")
foreach(f
    bin/stowage bin/stowage-conformance
    include/stowage/abi.h include/stowage/plugin.hpp include/stowage/blob_store.hpp
    include/stowage/detail/plugin_glue.hpp
    include/stowage/model_json.hpp include/stowage-host/stowage/registry.hpp
    include/stowage/conformance.hpp
    ${LIBDIR}/libstowage_core.so ${LIBDIR}/libstowage_core.so.0
    ${LIBDIR}/libstowage_conformance.so ${LIBDIR}/libstowage_conformance.so.0
    ${LIBDIR}/libstowage_format.a
    ${LIBDIR}/stowage/plugins/libstowage_file.so ${LIBDIR}/stowage/plugins/stowage-file.json
    ${LIBDIR}/stowage/plugins/libstowage_memory.so ${LIBDIR}/stowage/plugins/stowage-memory.json
    ${LIBDIR}/stowage/conformance/libstowage_conformance_shim.so
    ${LIBDIR}/cmake/stowage/stowageConfig.cmake ${LIBDIR}/cmake/stowage/stowageTargets.cmake
    share/stowage/conformance/fixtures/index.json)
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "cmake --install did not install ${f}")
  endif()
endforeach()
# The host's headers stay off a plugin author's include path.
if(EXISTS "${prefix}/include/stowage/registry.hpp")
  message(FATAL_ERROR "cmake --install put the host's registry.hpp beside the SDK's headers")
endif()
# Versioned libraries: the SONAME is libstowage_core.so.<major>.
step("objdump the installed core" objdump -p "${prefix}/${LIBDIR}/libstowage_core.so")
require_output("libstowage_core's SONAME" "SONAME +libstowage_core\\.so\\.0")

# 2. The installed command finds the installed plugins, not the build tree's.
step("installed stowage plugins" ${clean_env} "${prefix}/bin/stowage" plugins)
require_output("installed stowage plugins" "${plugins}/stowage-file\\.json")
if(step_output MATCHES "${BUILD_DIR}/lib/stowage/plugins")
  message(FATAL_ERROR "the installed stowage found the build tree's plugins:\n${step_output}")
endif()

# The core finds plugins beside itself, so an install whose libdir is not
# "lib" (lib64, lib/<multiarch>) still works, wherever the prefix moves.
set(moved "${WORK}/moved")
file(MAKE_DIRECTORY "${moved}/bin" "${moved}/lib/x86_64-linux-gnu")
file(COPY "${prefix}/bin/stowage" DESTINATION "${moved}/bin")
file(GLOB core_libs "${prefix}/${LIBDIR}/libstowage_core.so*")
file(COPY ${core_libs} "${prefix}/${LIBDIR}/stowage" DESTINATION "${moved}/lib/x86_64-linux-gnu")
step("stowage plugins in a moved lib/<multiarch> layout" ${clean_env}
     LD_LIBRARY_PATH=${moved}/lib/x86_64-linux-gnu "${moved}/bin/stowage" plugins)
require_output("a moved install" "${moved}/lib/x86_64-linux-gnu/stowage/plugins/stowage-file\\.json")

# 3. The sample plugin, out of tree, from the prefix only.
set(configure_args -DCMAKE_PREFIX_PATH=${prefix})
if(LAUNCHER)
  list(APPEND configure_args -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
endif()
if(BUILD_TYPE)
  list(APPEND configure_args -DCMAKE_BUILD_TYPE=${BUILD_TYPE})
endif()
# A sanitized stowage tree (the asan preset) needs sanitized users.
if(SANITIZE_FLAGS)
  foreach(v CMAKE_C_FLAGS CMAKE_CXX_FLAGS CMAKE_EXE_LINKER_FLAGS CMAKE_SHARED_LINKER_FLAGS
            CMAKE_MODULE_LINKER_FLAGS)
    list(APPEND configure_args "-D${v}=${SANITIZE_FLAGS}")
  endforeach()
endif()
step("configure samples/custom-plugin" ${CMAKE_COMMAND} -S "${SOURCE_DIR}/samples/custom-plugin"
     -B "${WORK}/sqlite-build" ${configure_args})
step("build samples/custom-plugin" ${CMAKE_COMMAND} --build "${WORK}/sqlite-build" -j2)
step("the conformance suite on sqlite://, from the sample's own CTest"
     ${clean_env} ${CMAKE_CTEST_COMMAND} --test-dir "${WORK}/sqlite-build" --output-on-failure)
message("${step_output}")

# 4. Installed beside stowage, the installed command uses it.
step("install the sqlite plugin" ${CMAKE_COMMAND} --install "${WORK}/sqlite-build" --prefix "${prefix}")
step("installed stowage plugins" ${clean_env} "${prefix}/bin/stowage" plugins)
require_output("installed stowage plugins" "${plugins}/stowage-sqlite\\.json")
set(fixture "${prefix}/share/stowage/conformance/fixtures/conv_sharded/model.json")
step("stowage copy file:// -> sqlite://" ${clean_env} "${prefix}/bin/stowage" copy
     "file://${fixture}" "sqlite://${WORK}/models.db#copied/conv" -q)
step("stowage verify sqlite://" ${clean_env} "${prefix}/bin/stowage" verify
     "sqlite://${WORK}/models.db#copied/conv")
step("stowage list sqlite://" ${clean_env} "${prefix}/bin/stowage" list "sqlite://${WORK}/models.db#")
require_output("stowage list sqlite://" "sqlite://${WORK}/models\\.db#copied/conv/model\\.json")

# 5. The host app, out of tree, serving an alias with the sqlite plugin.
step("configure samples/host-app" ${CMAKE_COMMAND} -S "${SOURCE_DIR}/samples/host-app"
     -B "${WORK}/host-app-build" ${configure_args})
step("build samples/host-app" ${CMAKE_COMMAND} --build "${WORK}/host-app-build" -j2)
file(WRITE "${WORK}/app.json" "{
  \"allow\": [\"sqlite\", \"file\"],
  \"aliases\": {\"models\": \"sqlite://${WORK}/app.db#shelf\"},
  \"defaults\": {\"sqlite\": {\"shard_size\": 16}}
}")
step("the host app on sqlite://" ${clean_env} "${WORK}/host-app-build/stowage-host-app"
     --config "${WORK}/app.json" --model "file://${fixture}" models://conv)
require_output("the host app" "-> sqlite://${WORK}/app\\.db#shelf/conv via plugin 'sqlite' 1\\.0\\.0 \\(${plugins}/stowage-sqlite\\.json\\)")
require_output("the host app" "identical to what was saved")
message("${step_output}")
