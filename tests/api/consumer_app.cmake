# Installs winnow from BUILD into a fresh PREFIX, builds examples/hello against that prefix alone (find_package), and
# compares its 16 greedy ids with the CLI's.
#   cmake -DBUILD=... -DSOURCE=... -DWORK=... -DMODEL=... [-DCXX_FLAGS=...] [-DLINK_FLAGS=...] -P consumer_app.cmake
# CXX_FLAGS / LINK_FLAGS (the winnow build's own, e.g. -fsanitize=address,undefined) are given to the example's build.
file(REMOVE_RECURSE ${WORK})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD} --prefix ${WORK}/prefix RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install failed: ${err}")
endif()
set(flags "")
if(CXX_FLAGS)
  list(APPEND flags "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}")
endif()
if(LINK_FLAGS)
  list(APPEND flags "-DCMAKE_EXE_LINKER_FLAGS=${LINK_FLAGS}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE}/examples/hello -B ${WORK}/hello -DCMAKE_PREFIX_PATH=${WORK}/prefix -DCMAKE_BUILD_TYPE=Release
  ${flags} RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configuring the example against the installed prefix failed: ${err}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK}/hello RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "building the example failed: ${out} ${err}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -DWINNOW=${WORK}/prefix/bin/winnow -DMODEL=${MODEL} "-DPROMPT=The capital of France is" -DN=16
  "-DCMD=${WORK}/hello/hello;${MODEL};The capital of France is;16" -P ${CMAKE_CURRENT_LIST_DIR}/compare_ids.cmake RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the installed example disagrees with the installed CLI")
endif()
