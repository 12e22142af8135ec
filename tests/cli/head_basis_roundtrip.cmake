# The adaptive head's basis end to end on a tiny model: calibrate-head --fit-head-basis writes the basis and the
# factors tuned in it (stored with the basis's checksum), generate --head-basis finds and applies them (its JSON says
# "calibrated"), the basis refuses a model with other content, and a basis refit under the same name replaces the old
# factors' basis so generate with a different basis file reports no entry rather than misapplying them.
# Usage: cmake -DWINNOW=path/to/winnow -DMODEL=model.gguf -DOTHER=another-model.gguf -DDIR=scratch-dir -P head_basis_roundtrip.cmake
file(REMOVE_RECURSE "${DIR}")
file(MAKE_DIRECTORY "${DIR}")

include(${CMAKE_CURRENT_LIST_DIR}/run_ok.cmake)

set(calibrate ${WINNOW} calibrate-head -m ${MODEL} --window 8 --queries 20 --deltas 0.05 --threads 1 --head-exact-prefix 2 --head-row-clusters 4
    --basis-windows 60 --out ${DIR}/head.json)
run_ok(out ${calibrate} --head-basis ${DIR}/basis.gguf --fit-head-basis)
if(NOT out MATCHES "head basis: fit on [0-9]+ states.*checksum ([0-9a-f]+)")
  message(FATAL_ERROR "calibrate-head did not report the basis it wrote:\n${out}")
endif()
set(checksum "${CMAKE_MATCH_1}")
file(READ ${DIR}/head.json cal)
string(JSON algorithm GET "${cal}" factors 0 algorithm)
string(JSON basis GET "${cal}" factors 0 basis)
if(NOT algorithm STREQUAL "fast+pca+prefix2+clusters4" OR NOT basis STREQUAL checksum)
  message(FATAL_ERROR "the calibration entry is '${algorithm}' in basis '${basis}', expected fast+pca+prefix2+clusters4 in ${checksum}")
endif()

set(generate ${WINNOW} generate -p "hello there" -n 4 --ignore-eos --json --temp 0 --head adaptive --delta 0.05 --head-exact-prefix 2 --head-row-clusters 4
    --head-calibration ${DIR}/head.json)
run_ok(out ${generate} -m ${MODEL} --head-basis ${DIR}/basis.gguf)
string(JSON note GET "${out}" head calibration)
if(NOT note MATCHES "^calibrated|even they missed")
  message(FATAL_ERROR "generate did not find the factors calibrated in its basis: ${note}")
endif()

# another basis (fit on other windows): same options, other checksum, no entry
run_ok(out ${WINNOW} calibrate-head -m ${MODEL} --window 8 --queries 20 --deltas 0.05 --threads 1 --head-exact-prefix 2 --head-row-clusters 4
    --basis-windows 90 --out ${DIR}/other.json --head-basis ${DIR}/other-basis.gguf --fit-head-basis)
run_ok(out ${generate} -m ${MODEL} --head-basis ${DIR}/other-basis.gguf)
string(JSON note GET "${out}" head calibration)
if(NOT note MATCHES "has no entry for fast\\+pca\\+prefix2\\+clusters4 with basis [0-9a-f]+ at this delta")
  message(FATAL_ERROR "generate applied factors calibrated in another basis: ${note}")
endif()

# a model with other content refuses the basis, in one line
execute_process(COMMAND ${generate} -m ${OTHER} --head-basis ${DIR}/basis.gguf RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(STRIP "${err}" err)
if(rc EQUAL 0 OR NOT err MATCHES "was fit on another model")
  message(FATAL_ERROR "another model accepted the basis (exit ${rc}): ${err}")
endif()
message(STATUS "ok: basis ${checksum}")
