# The adaptive head's basis end to end on a tiny model: calibrate-head --fit-head-basis writes the basis and the
# factors tuned in it (stored with the basis's checksum), generate --head-basis finds and applies them (its JSON says
# "calibrated"), a basis refit under the same names replaces the old factors (generate with the old basis file then
# reports no entry rather than misapplying them), and the basis refuses a model with other content.
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
if(NOT note MATCHES "^calibrated")
  message(FATAL_ERROR "generate did not find the factors calibrated in its basis: ${note}")
endif()

# a refit under the same names (other windows: another checksum) replaces the entry: the file holds one entry, in the
# new basis, and the first basis (kept aside) finds no factors
file(COPY_FILE ${DIR}/basis.gguf ${DIR}/first-basis.gguf)
set(calibrate_more ${calibrate})
list(TRANSFORM calibrate_more REPLACE "^60$" "90")
run_ok(out ${calibrate_more} --head-basis ${DIR}/basis.gguf --fit-head-basis)
if(NOT out MATCHES "checksum ([0-9a-f]+)" OR CMAKE_MATCH_1 STREQUAL checksum)
  message(FATAL_ERROR "the refit basis has the first one's checksum or none:\n${out}")
endif()
set(refit "${CMAKE_MATCH_1}")
file(READ ${DIR}/head.json cal)
string(JSON entries LENGTH "${cal}" factors)
string(JSON basis GET "${cal}" factors 0 basis)
if(NOT entries EQUAL 1 OR NOT basis STREQUAL refit)
  message(FATAL_ERROR "after the refit the calibration holds ${entries} entries, the first in basis ${basis} (expected 1, in ${refit})")
endif()
run_ok(out ${generate} -m ${MODEL} --head-basis ${DIR}/first-basis.gguf)
string(JSON note GET "${out}" head calibration)
if(NOT note MATCHES "has no entry for fast\\+pca\\+prefix2\\+clusters4 with basis ${checksum} at this delta")
  message(FATAL_ERROR "generate applied factors calibrated in another basis: ${note}")
endif()

# a model with other content refuses the basis, in one line
execute_process(COMMAND ${generate} -m ${OTHER} --head-basis ${DIR}/basis.gguf RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(STRIP "${err}" err)
if(rc EQUAL 0 OR NOT err MATCHES "was fit on another model")
  message(FATAL_ERROR "another model accepted the basis (exit ${rc}): ${err}")
endif()
message(STATUS "ok: basis ${checksum}")
