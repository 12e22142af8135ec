# `winnow bench finetune` on an HF safetensors checkpoint (issue 16 item 7): it crashed on the model's null gguf();
# it must run, measure the gradient cosine for every policy (an exact one at 1), pass a learning rate that
# std::to_string would round to 0 ("0.000000") to its child runs intact, and report each child's own peak memory (the
# wait4 figure counted the parent's resident memory at the spawn: ~240 MiB for this tiny model, ~13 MiB its own).
#   cmake -DWINNOW=... -DMODEL=<tiny-llama-hf> -DWORK=... -P bench_finetune_hf.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
string(REPEAT "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. " 8 text)
file(WRITE ${WORK}/data.txt "${text}")
execute_process(COMMAND ${WINNOW} bench finetune -m ${MODEL} --data ${WORK}/data.txt --steps 2 --seq 8 --batch 1 --val-windows 1
                        --lr 1.234567e-7 --policies "attention=dense;attention=lse,checkpoint=on;linear=asa1" --json --out ${WORK}/report.json
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "bench finetune on an HF checkpoint failed (${rc}): ${err}")
endif()
file(READ ${WORK}/report.json saved)
if(NOT saved STREQUAL out)
  message(FATAL_ERROR "--out and stdout differ")
endif()
string(JSON lr GET "${out}" finetune lr)
if(NOT lr MATCHES "^1\\.2345(67|669999+)[0-9]*[eE]-0?7$") # nlohmann prints 17 digits
  message(FATAL_ERROR "lr is ${lr}, not 1.234567e-07")
endif()
string(JSON n LENGTH "${out}" finetune runs)
if(NOT n EQUAL 3)
  message(FATAL_ERROR "expected 3 runs, got ${n}")
endif()
math(EXPR last "${n} - 1")
foreach(i RANGE ${last})
  string(JSON policy GET "${out}" finetune runs ${i} policy)
  string(JSON measured GET "${out}" finetune runs ${i} gradient_cosine_measured)
  string(JSON cosine GET "${out}" finetune runs ${i} gradient_cosine_vs_exact)
  string(JSON exact GET "${out}" finetune runs ${i} exact)
  string(JSON peak GET "${out}" finetune runs ${i} peak_rss_mib)
  if(NOT measured)
    message(FATAL_ERROR "${policy}: gradient cosine not measured")
  endif()
  if(exact AND cosine LESS 0.999999)
    message(FATAL_ERROR "${policy} is exact but its gradient cosine is ${cosine}")
  endif()
  if(NOT exact AND NOT cosine LESS 0.999999)
    message(FATAL_ERROR "${policy} is approximate but its gradient cosine is ${cosine}: was it measured?")
  endif()
  if(NOT peak GREATER 1 OR NOT peak LESS 150) # ~13 MiB, ~70 under ASan
    message(FATAL_ERROR "${policy}: peak RSS ${peak} MiB is not this tiny model's own")
  endif()
  message(STATUS "${policy}: cosine ${cosine}, peak ${peak} MiB")
endforeach()
