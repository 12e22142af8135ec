#!/usr/bin/env bash
# Every GPU check and benchmark of winnow in one call on the GPU machine (one H200), from the repository root, after
# bench/device/prepare.sh's payload has been carried there (see prepare.sh). Budget: under 8 minutes. Writes its
# reports under $OUT (fetched back by the device tool) and prints a short summary last.
#   1. op harness, CUDA vs the double reference (every op x type x shape)
#   2. GPU tests: dequantize bit-exactness, CUDA decoder vs CPU decoder (tiny models, SmolLM2 Q4_1, F16/BF16 caches),
#      the sample op vs its CPU twin (and recorded, and in generation; its time per call is printed in gpu-tests.txt)
#   3. compute-sanitizer memcheck on the harness and on one generate run
#   4. greedy SmolLM2 Q4_1, 10 prompts x 32 tokens: --device cuda vs --device cpu token for token
#   5. bench decode --device cuda (pp512, tg128, us/token, GB/s, % of the measured copy roofline; with and without the
#      decode step recorded as a CUDA graph; tg128 also with fused norms off and with PDL off): SmolLM2 Q4_1 and,
#      made here with transformers from configs (random bf16 weights), SmolLM2-135M, GPT-2 124M and Llama-3.2-1B shapes
#      and per-kernel times from one Nsight Compute run of a 32-token generation (kernel_times.py)
#   6. the HF transformers peer on the same bf16 weights (eager, and static cache + torch.compile), batch 1, greedy
#   7. the output head (#15), last, in what is left of the 8 minutes: bench/device/head.sh
set -uo pipefail
export PATH=$PATH:/usr/local/cuda/bin # compute-sanitizer, where a bare machine's PATH lacks the toolkit
here=bench/device
. $here/results.sh
results_begin run # reports in a staging folder, packed into $OUT/run-results.tar.gz after every step (results.sh)
export WINNOW_RESULTS_NESTED=1 # head.sh writes into this folder
W=/tmp/w
rm -rf "$W" && python3 -m tarfile -e $here/payload/bundle.tar.xz $W
run() { env LD_LIBRARY_PATH=$W/lib:/usr/local/cuda/lib64 "$@"; }
export WINNOW_FIXTURE_DIR=$PWD/$here/payload/fixtures
model=/tmp/smollm2-q4_1.gguf
if [ -f $here/model-a/part ] && [ -f $here/model-b/part ]; then # (and model-c where prepare.sh needed three parts)
  cat $here/model-?/part > $model
  echo "$(cat $here/payload/model.sha256)  $model" | sha256sum --check --status || { echo "SmolLM2 parts (model-?/part) do not match the checksum" | tee "$OUT/model-error.txt"; rm -f $model; }
fi
[ -f $model ] && export WINNOW_DEFAULT_MODEL=$model
summary=()
note() { summary+=("$1"); echo "== $1"; results_pack "${summary[@]}"; }

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
run $W/bin/winnow info -m "$WINNOW_FIXTURE_DIR/tiny-llama.gguf" --device cuda > "$OUT/info.txt" 2>&1; note "info --device cuda: rc $?"

timeout 150 $(which env) LD_LIBRARY_PATH=$W/lib:/usr/local/cuda/lib64 $W/bin/winnow_ops_tests --gtest_filter='*cuda*:BackendOpsCoverage*' \
  > "$OUT/ops-cuda.txt" 2>&1
note "op harness (cuda): rc $? — $(grep -E '^\[  (PASSED|FAILED)' "$OUT/ops-cuda.txt" | tr '\n' ' ')"

timeout 150 $(which env) LD_LIBRARY_PATH=$W/lib:/usr/local/cuda/lib64 $W/bin/winnow_gpu_tests > "$OUT/gpu-tests.txt" 2>&1
note "gpu tests: rc $? — $(grep -E '^\[  (PASSED|FAILED)' "$OUT/gpu-tests.txt" | tr '\n' ' ')"

if command -v compute-sanitizer >/dev/null; then
  timeout 200 compute-sanitizer --tool memcheck --error-exitcode 9 $(which env) LD_LIBRARY_PATH=$W/lib:/usr/local/cuda/lib64 \
    $W/bin/winnow_ops_tests --gtest_filter='*cuda*:-*head_49152*:*cuda__sample*:*cuda__head_top_k*' > "$OUT/sanitizer-ops.txt" 2>&1
  note "compute-sanitizer memcheck, op harness: rc $? — $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer-ops.txt" | tail -1)"
  # the sample op's harness cases are thousands of calls: under memcheck, a subset that takes every path of the kernel
  timeout 90 compute-sanitizer --tool memcheck --error-exitcode 9 $(which env) LD_LIBRARY_PATH=$W/lib:/usr/local/cuda/lib64 \
    $W/bin/winnow_gpu_tests --gtest_filter='CudaSample.SanitizerSubset:CudaSample.RecordedOpReplaysWithNewUAndLength' > "$OUT/sanitizer-sample.txt" 2>&1
  note "compute-sanitizer memcheck, sample op: rc $? — $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer-sample.txt" | tail -1)"
  # the sample kernel is one 1024-thread block full of barriers and reused shared buffers: race and barrier checks too
  for tool in racecheck synccheck; do
    timeout 60 compute-sanitizer --tool $tool --error-exitcode 9 $(which env) LD_LIBRARY_PATH=$W/lib:/usr/local/cuda/lib64 \
      $W/bin/winnow_gpu_tests --gtest_filter='CudaSample.SanitizerSubset' > "$OUT/sanitizer-sample-$tool.txt" 2>&1
    note "compute-sanitizer $tool, sample op: rc $? — $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer-sample-$tool.txt" | tail -1)"
  done
  # the GEMVs that stage the input's RMSNorm in shared memory (rms_norm_linear_*): shared-memory races and barriers
  # (rope_store_kv uses no shared memory: the memcheck run above covers it)
  for tool in racecheck synccheck; do
    timeout 60 compute-sanitizer --tool $tool --error-exitcode 9 $(which env) LD_LIBRARY_PATH=$W/lib:/usr/local/cuda/lib64 \
      $W/bin/winnow_ops_tests --gtest_filter='*cuda__rms_norm_linear*_t1' > "$OUT/sanitizer-fused-norm-$tool.txt" 2>&1
    note "compute-sanitizer $tool, fused norm GEMVs: rc $? — $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer-fused-norm-$tool.txt" | tail -1)"
  done
  if [ -f $model ]; then
    timeout 120 compute-sanitizer --tool memcheck --error-exitcode 9 $(which env) LD_LIBRARY_PATH=$W/lib:/usr/local/cuda/lib64 \
      $W/bin/winnow generate -m $model -p "The capital of France is" -n 8 --device cuda > "$OUT/sanitizer-generate.txt" 2>&1
    note "compute-sanitizer memcheck, generate: rc $? — $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer-generate.txt" | tail -1)"
  fi
else
  note "compute-sanitizer: not on the PATH"
fi

if [ -f $model ]; then
  python3 $here/greedy_parity.py --winnow "$W/bin/winnow" --libs "$W/lib:/usr/local/cuda/lib64" --model $model \
    --prompts tests/fixtures/generation_prompts.txt --tokens 32 --out "$OUT/greedy-cuda-vs-cpu.json" > "$OUT/greedy.txt" 2>&1
  note "greedy cuda vs cpu: rc $? — $(tail -1 "$OUT/greedy.txt")"
  run $W/bin/winnow bench decode -m $model --device cuda -p 512 -n 128 -r 5 --json > "$OUT/bench-smollm2-q4_1.json" 2> "$OUT/bench-smollm2-q4_1.err"
  note "bench SmolLM2 Q4_1 cuda: rc $?"
  # the same without the recorded decode step (CUDA graph): what one launch per token buys
  run env WINNOW_CUDA_GRAPHS=0 $W/bin/winnow bench decode -m $model --device cuda -p 0 -n 128 -r 5 --json > "$OUT/bench-smollm2-q4_1-nographs.json" \
    2> "$OUT/bench-smollm2-q4_1-nographs.err"
  note "bench SmolLM2 Q4_1 cuda, no graphs: rc $?"
  # the same with the input norms as launches of their own (WINNOW_CUDA_FUSE_NORM=0): what staging them in the GEMV
  # blocks saves or costs (each GEMV block then recomputes its row's norm before its first weight load)
  run env WINNOW_CUDA_FUSE_NORM=0 $W/bin/winnow bench decode -m $model --device cuda -p 0 -n 128 -r 5 --json > "$OUT/bench-smollm2-q4_1-unfused-norm.json" \
    2> "$OUT/bench-smollm2-q4_1-unfused-norm.err"
  note "bench SmolLM2 Q4_1 cuda, unfused norms: rc $?"
  # the same with the projections and rope + cache writes as two launches (WINNOW_CUDA_FUSE_QKV_ROPE=0): what the fused
  # qkv_rope_store kernel saves or costs (its warps project and rotate a pair, half as many warps as outputs there)
  run env WINNOW_CUDA_FUSE_QKV_ROPE=0 $W/bin/winnow bench decode -m $model --device cuda -p 0 -n 128 -r 5 --json > "$OUT/bench-smollm2-q4_1-unfused-qkv-rope.json" \
    2> "$OUT/bench-smollm2-q4_1-unfused-qkv-rope.err"
  note "bench SmolLM2 Q4_1 cuda, unfused qkv + rope: rc $?"
  # the same with Programmatic Dependent Launch off (WINNOW_CUDA_PDL=0: every kernel launched as <<<>>>, so each one's
  # launch and block scheduling wait for the previous kernel to finish): what PDL saves in the recorded decode step
  run env WINNOW_CUDA_PDL=0 $W/bin/winnow bench decode -m $model --device cuda -p 0 -n 128 -r 5 --json > "$OUT/bench-smollm2-q4_1-nopdl.json" \
    2> "$OUT/bench-smollm2-q4_1-nopdl.err"
  note "bench SmolLM2 Q4_1 cuda, PDL off: rc $?"
  # per-kernel times (#11): Nsight Compute's kernel durations over a 32-token greedy generation, summed per kernel, and
  # beside the measured tg time per token (the difference: gaps between kernels). Needs ncu's counters (Firecracker).
  ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | tail -1)
  if [ -n "$ncu" ]; then
    timeout 120 "$ncu" --clock-control none --metrics gpu__time_duration.sum --csv --print-units base --log-file "$OUT/ncu-generate.csv" \
      $(which env) LD_LIBRARY_PATH=$W/lib:/usr/local/cuda/lib64 $W/bin/winnow generate -m $model -p "The capital of France is" -n 32 \
      --device cuda --temp 0 --ignore-eos > "$OUT/ncu-generate.out" 2>&1
    rc=$?
    python3 $here/kernel_times.py "$OUT/ncu-generate.csv" --tokens 32 --bench "$OUT/bench-smollm2-q4_1.json" --out "$OUT/kernel-times.json" \
      > "$OUT/kernel-times.txt" 2>&1
    note "per-kernel times (ncu): rc $rc/$? — $(head -1 "$OUT/kernel-times.txt" | cut -c1-160)"
  else
    note "per-kernel times: ncu not on the PATH"
  fi
fi

timeout 240 python3 $here/hf_models_and_peer.py --winnow "$W/bin/winnow" --libs "$W/lib:/usr/local/cuda/lib64" --out "$OUT" > "$OUT/hf.txt" 2>&1
note "random bf16 models + HF peer: rc $? — see hf.txt"

# the output head (#15): the fused head_top_k op and the adaptive warm-up kernel vs their twins, memcheck on a subset,
# and bench head --device cuda (fused vs cuBLAS + top_k vs linear + top_k; SmolLM2's head and a synthetic 128K x 4096).
# Last, so that the decoder's checks come back first; skipped when under ~2 minutes of the 8 are left.
if [ $SECONDS -lt 360 ]; then
  W=$W timeout $((470 - SECONDS)) bash $here/head.sh > "$OUT/head.txt" 2>&1
  note "head (#15): rc $? — $(grep '^== ' "$OUT/head.txt" | tr '\n' ' ' | cut -c1-300)"
else
  note "head (#15): skipped, $SECONDS s already spent (run bench/device/head.sh in its own call)"
fi

echo
echo "==================== summary"
printf '%s\n' "${summary[@]}"
tail -25 "$OUT/hf.txt"
for f in "$OUT"/bench-*.json; do case $f in *bench-head*) continue ;; esac; [ -s "$f" ] && python3 -c "
import json,sys
for r in json.load(open('$f')): print('%-28s %-6s %9.1f tok/s %7.1f us/tok  %s' % ('$(basename $f .json)', r['test'], r['tokens_per_s'], 1e6/r['tokens_per_s'], ('%.0f%% of copy roofline' % (100*r['roofline_fraction'])) if 'roofline_fraction' in r else ''))"; done
results_pack "${summary[@]}"
