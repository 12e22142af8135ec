# A sharded safetensors checkpoint whose second shard is a symlink to a file outside the directory must be refused
# with one line naming the shard (issue 16 item 5), while the same checkpoint with the real file loads.
#   cmake -DWINNOW=... -DSRC=<tiny-llama-hf> -DWORK=... -P symlinked_shard.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/ckpt ${WORK}/elsewhere)
file(GLOB files ${SRC}/*)
file(COPY ${files} DESTINATION ${WORK}/ckpt)
execute_process(COMMAND ${WINNOW} info -m ${WORK}/ckpt RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the intact checkpoint does not load: ${err}")
endif()
file(RENAME ${WORK}/ckpt/model-00002-of-00002.safetensors ${WORK}/elsewhere/model-00002-of-00002.safetensors)
file(CREATE_LINK ${WORK}/elsewhere/model-00002-of-00002.safetensors ${WORK}/ckpt/model-00002-of-00002.safetensors SYMBOLIC)
execute_process(COMMAND ${WINNOW} info -m ${WORK}/ckpt RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "shard 'model-00002-of-00002.safetensors' resolves outside the checkpoint directory")
  message(FATAL_ERROR "a shard symlinked out of the directory was not refused (rc ${rc}): ${err}")
endif()
message(STATUS "refused: ${err}")
