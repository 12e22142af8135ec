# winnow bench decode's tg test decodes through the generator's path (ExactTokenPicker): its greedy tokens from
# token 1 on an empty context are `winnow generate`'s for the prompt whose only token is 1 (the byte 0x01 in the tiny
# models' byte-level vocabularies), and --json names the path it took. Also runs at a depth (-d 3).
# Usage: cmake -DWINNOW=path/to/winnow -DMODEL=model.gguf -DDIR=scratch-dir [-DN=8] -P bench_decode_tokens.cmake
if(NOT N)
  set(N 8)
endif()

include(${CMAKE_CURRENT_LIST_DIR}/run_ok.cmake)

# a JSON array of integers as a CMake list
function(json_ids var json)
  string(JSON n LENGTH "${json}" ${ARGN})
  set(ids "")
  if(n GREATER 0)
    math(EXPR last "${n} - 1")
    foreach(i RANGE ${last})
      string(JSON v GET "${json}" ${ARGN} ${i})
      list(APPEND ids ${v})
    endforeach()
  endif()
  set(${var} "${ids}" PARENT_SCOPE)
endfunction()

# the bench: one tg row, no pp
run_ok(bench ${WINNOW} bench decode -m ${MODEL} -p 0 -n ${N} -r 1 --json)
string(JSON rows LENGTH "${bench}")
string(JSON test GET "${bench}" 0 test)
if(NOT rows EQUAL 1 OR NOT test STREQUAL "tg${N}")
  message(FATAL_ERROR "expected one row tg${N}, got ${rows} rows, the first '${test}':\n${bench}")
endif()
string(JSON path GET "${bench}" 0 tg_path)
string(JSON device GET "${bench}" 0 device)
# the CPU backend has the sample op: the head product and the greedy pick run as the step's tail, op by op (no recording)
if(device STREQUAL "cpu" AND NOT path MATCHES "^op by op: layers, head product and greedy sample op")
  message(FATAL_ERROR "tg_path on the CPU: '${path}' (expected the picker's sample-op path, op by op)")
endif()
json_ids(bench_ids "${bench}" 0 tg_token_ids)

# generate from the one-token prompt [1]
string(ASCII 1 byte1)
get_filename_component(stem ${MODEL} NAME_WE)
set(prompt_file ${DIR}/bench-decode-prompt-${stem}.txt) # one per model: the tests may run in parallel
file(WRITE ${prompt_file} "${byte1}")
run_ok(gen ${WINNOW} generate -m ${MODEL} -f ${prompt_file} -n ${N} --ignore-eos --temp 0 --repeat-penalty 1 --json)
json_ids(prompt_ids "${gen}" prompt_ids)
if(NOT prompt_ids STREQUAL "1")
  message(FATAL_ERROR "the prompt 0x01 is not the one token 1 in this model's vocabulary: [${prompt_ids}]")
endif()
json_ids(gen_ids "${gen}" output_ids)
list(LENGTH bench_ids nb)
if(NOT nb EQUAL N OR NOT bench_ids STREQUAL gen_ids)
  message(FATAL_ERROR "bench decode's tokens [${bench_ids}] differ from generate's [${gen_ids}]")
endif()

# after a context of 3 tokens: runs, N tokens
run_ok(deep ${WINNOW} bench decode -m ${MODEL} -p 0 -n ${N} -d 3 -r 1 --json)
string(JSON test GET "${deep}" 0 test)
json_ids(deep_ids "${deep}" 0 tg_token_ids)
list(LENGTH deep_ids nd)
if(NOT test STREQUAL "tg${N} @ d3" OR NOT nd EQUAL N)
  message(FATAL_ERROR "at depth 3: test '${test}', ${nd} tokens:\n${deep}")
endif()
message(STATUS "ok: tg_path '${path}'; bench decode's tokens = generate's: [${bench_ids}]")
