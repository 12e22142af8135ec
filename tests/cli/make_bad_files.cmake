# Writes damaged copies of a tiny fixture model for the CLI error tests.
file(SIZE ${SRC} size)
math(EXPR half "${size} / 2")
execute_process(COMMAND head -c ${half} ${SRC} OUTPUT_FILE ${DIR}/truncated.gguf RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "could not write ${DIR}/truncated.gguf")
endif()
file(WRITE ${DIR}/not-a-model.gguf "this is plain text, not a model\n")
