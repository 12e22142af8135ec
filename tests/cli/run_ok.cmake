# run_ok(VAR COMMAND...): runs the command, fails the test (naming the command, with its stderr) on a non-zero exit,
# and sets VAR to its stdout. Included by the CLI test scripts.
function(run_ok var)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "exit ${rc} from: ${ARGN}\n${err}")
  endif()
  set(${var} "${out}" PARENT_SCOPE)
endfunction()
