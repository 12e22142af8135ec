#!/usr/bin/env bash
# Every GPU check and benchmark of winnow in one call on the GPU machine (one H200), from the repository root, after
# bench/device/prepare.sh's payload has been carried there (see prepare.sh). Budget: under 8 minutes. Writes its
# reports under $OUT (fetched back by the device tool) and prints a short summary last.
# In order of value, each step capped so that the run ends by 520 s (the call's 580 s, less packing), and skipped when
# too little time is left (the summary says so). It stops at once, with setup-error.txt, when our programs cannot be
# loaded (cuBLAS is looked for in the toolkit, then in torch's nvidia wheels); the summary's first line names the device.
#   1. op harness, CUDA vs the double reference (every op x type x shape)
#   2. GPU tests: dequantize bit-exactness, CUDA decoder vs CPU decoder (tiny models, SmolLM2 Q4_1, F16/BF16 caches),
#      the sample op vs its CPU twin (and recorded, and in generation; its time per call is printed in gpu-tests.txt)
#   3. greedy SmolLM2 Q4_1, 10 prompts x 32 tokens: --device cuda vs --device cpu token for token
#   4. bench decode --device cuda on SmolLM2 Q4_1 (pp512, tg128, us/token, GB/s, % of the measured copy roofline), and
#      tg128 without the CUDA graph, with the fused norms off, with the fused qkv + rope off and with PDL off; the
#      llama.cpp peer (its CUDA backend, llama_cpp_peer.py) on the same file
#   4a. bench gemv --device cuda: one GEMV per stored weight type (K-quants included) on Llama-3-8B's shapes
#   4b. winnow logits --device cuda against llama.cpp's logits of the tiny models, K presets included (logits_parity.py)
#   4c. SmolLM2 written as Q4_K_M, Q6_K and Q3_K_M by winnow quantize there: bench decode --device cuda on each, greedy cuda vs cpu
#   5. compute-sanitizer memcheck on the harness and one generate run (before 6, which could take their time)
#   6. made here with transformers from configs (random bf16 weights): SmolLM2-135M, GPT-2 124M and Llama-3.2-1B
#      shapes, their logits against HF float32 on the same weights (logits_parity.py), benchmarked, and the HF transformers peer on the same weights (eager, and static cache +
#      torch.compile), batch 1, greedy, and llama.cpp on the llama-shaped ones (converted to GGUF); capped at 240 s
#   6b. compute-sanitizer: memcheck on the sample op; racecheck and synccheck on the kernels with shared memory and
#      barriers
#   7. per-kernel times from one Nsight Compute run of an 8-token generation (kernel_times.py)
#   8. the output head (#15), last, in what is left: bench/device/head.sh
set -uo pipefail
export PATH=$PATH:/usr/local/cuda/bin # compute-sanitizer, where a bare machine's PATH lacks the toolkit
here=bench/device
. $here/results.sh
results_begin run # reports in a staging folder, packed into $OUT/run-results.tar.gz after every step (results.sh)
export WINNOW_RESULTS_NESTED=1 # head.sh writes into this folder
W=/tmp/w
rm -rf "$W" && python3 -m tarfile -e $here/payload/bundle.tar.xz $W
export WINNOW_FIXTURE_DIR=$PWD/$here/payload/fixtures
model=/tmp/smollm2-q4_1.gguf
. $here/model.sh
error=$(join_model $model) || echo "$error" | tee "$OUT/model-error.txt" # (model-c too where prepare.sh needed three parts)
[ -f $model ] && export WINNOW_DEFAULT_MODEL=$model
summary=()
note() { summary+=("$1"); echo "== $1"; results_pack "${summary[@]}"; }

# A step's timeout: at most $1 seconds and no later than END s into the run; 0 when under 20 s are left (skip the step).
# END is 520: the first run (2026-12-04) ended at 377 s with the HF step cut at 150 s, which needs about 200 s.
END=${WINNOW_RUN_END:-520}
cap() { local left=$((END - SECONDS)); [ $left -lt 20 ] && { echo 0; return; }; echo $(( left < $1 ? left : $1 )); }
# runs "$@" under timeout $(cap $1), or prints that the step was skipped (rc 124 either way when it did not finish)
step() {
  local t; t=$(cap "$1"); shift
  if [ "$t" -eq 0 ]; then echo "skipped: $((END - SECONDS)) s left"; return 124; fi
  timeout -k 10 "$t" "$@"
}
libs="$W/lib:/usr/local/cuda/lib64"
# cuBLAS is not in the bundle (device-bundle.sh): the machine's toolkit or torch's pip wheels (nvidia/*/lib) carry it.
# When our programs cannot be loaded, every step would fail in seconds while the HF step still took minutes: say what is
# missing and stop.
missing() { LD_LIBRARY_PATH=$libs ldd "$W/bin/winnow" 2>&1 | grep 'not found'; }
if [ ! -x "$W/bin/winnow" ]; then
  echo "the bundle did not unpack to $W/bin/winnow" | tee "$OUT/setup-error.txt"; results_pack "setup: no bundle"; exit 1
fi
if [ -n "$(missing)" ]; then
  wheels=$(timeout 30 python3 -c "import glob, os, nvidia; print(':'.join(sorted(glob.glob(os.path.join(list(nvidia.__path__)[0], '*', 'lib')))))" 2>/dev/null)
  [ -n "$wheels" ] && libs="$libs:$wheels"
fi
if [ -n "$(missing)" ]; then
  { echo "winnow cannot load: LD_LIBRARY_PATH=$libs"; missing; } | tee "$OUT/setup-error.txt"
  results_pack "setup: libraries missing, see setup-error.txt"
  exit 1
fi
ours=(env LD_LIBRARY_PATH=$libs) # our programs with the bundle's libraries (the tools and python3 without them)

# The llama.cpp peer (#11 item 5): llama-cpp-python's CUDA build from extra/peer (prepare.sh), unpacked once, run through
# llama_cpp_peer.py with the machine's CUDA libraries (not the bundle's: its libstdc++ is not for python3); the HF step
# uses it too, for the random bf16 models. Left empty (the steps say so) when the peer did not travel or cannot load.
peer_dir=$here/extra/peer
peer_libs=${libs#"$W/lib:"}
llama_peer=()
if [ -f $peer_dir/llama-cpp-python-0.3.16-cuda-sm90.tar.xz ]; then
  rm -rf /tmp/llp
  { timeout -k 5 60 python3 -m tarfile -e $peer_dir/llama-cpp-python-0.3.16-cuda-sm90.tar.xz /tmp/llp &&
    timeout -k 5 60 python3 -m pip install -q --no-index --no-deps --target /tmp/llp $peer_dir/diskcache-5.6.3-py3-none-any.whl &&
    for lib in /tmp/llp/llama_cpp/lib/lib*.so; do LD_LIBRARY_PATH=$peer_libs ldd $lib; done &&
    PYTHONPATH=/tmp/llp LD_LIBRARY_PATH=$peer_libs timeout -k 5 60 python3 -c 'import llama_cpp as L; L.llama_backend_init(); assert L.llama_supports_gpu_offload(), "no GPU offload"; print("llama_cpp", L.__version__, "loads, GPU offload")'
  } > "$OUT/llama-cpp-setup.txt" 2>&1 && ! grep -q 'not found' "$OUT/llama-cpp-setup.txt" &&
    llama_peer=(env PYTHONPATH=/tmp/llp:$PWD/$peer_dir/gguf-py LD_LIBRARY_PATH=$peer_libs python3 $PWD/$here/llama_cpp_peer.py)
fi

timeout -k 5 20 nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
# the device and driver first in the summary, so the reports can be filed under the device's name
note "device: $(timeout -k 5 20 nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -1)"
step 30 "${ours[@]}" $W/bin/winnow info -m "$WINNOW_FIXTURE_DIR/tiny-llama.gguf" --device cuda > "$OUT/info.txt" 2>&1; note "info --device cuda: rc $?"

step 150 "${ours[@]}" $W/bin/winnow_ops_tests --gtest_filter='*cuda*:BackendOpsCoverage*' > "$OUT/ops-cuda.txt" 2>&1
note "op harness (cuda): rc $? — $(grep -E '^\[  (PASSED|FAILED)' "$OUT/ops-cuda.txt" | tr '\n' ' ')"

# The adaptive head's persistent kernel (#15: one cooperative launch per query, grid barriers) first and alone, on a
# short leash: it has only run on the SIMT emulator, and a grid that misses a barrier hangs. If it fails, every later
# step uses the host-driven loop (WINNOW_ADAPTIVE_LOOP=host) so that the run still measures the rest.
step 45 "${ours[@]}" $W/bin/winnow_gpu_tests --gtest_filter='CudaAdaptiveHead.Persistent*' > "$OUT/gpu-tests-persistent.txt" 2>&1
rc=$?
[ $rc -ne 0 ] && export WINNOW_ADAPTIVE_LOOP=host
note "gpu tests, persistent adaptive query: rc $rc — $(grep -E '^\[  (PASSED|FAILED)' "$OUT/gpu-tests-persistent.txt" | tr '\n' ' ')${WINNOW_ADAPTIVE_LOOP:+ (later steps: WINNOW_ADAPTIVE_LOOP=host)}"

step 150 "${ours[@]}" $W/bin/winnow_gpu_tests --gtest_filter='-CudaAdaptiveHead.Persistent*' > "$OUT/gpu-tests.txt" 2>&1
note "gpu tests: rc $? — $(grep -E '^\[  (PASSED|FAILED)' "$OUT/gpu-tests.txt" | tr '\n' ' ')"

if [ -f $model ]; then
  step 120 python3 $here/greedy_parity.py --winnow "$W/bin/winnow" --libs "$libs" --model $model \
    --prompts tests/fixtures/generation_prompts.txt --tokens 32 --out "$OUT/greedy-cuda-vs-cpu.json" > "$OUT/greedy.txt" 2>&1
  note "greedy cuda vs cpu: rc $? — $(tail -1 "$OUT/greedy.txt")"
  # the clocks, power and load while the decode bench runs (every 100 ms): tiny kernels whose time does not move with their
  # bytes (2026-12-04: 4.6 us for a 200 KB GEMV, 3.9 us for a 576-element norm) could be a GPU that never left its low clocks
  timeout -k 5 70 nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,utilization.gpu,pstate --format=csv -lms 100 > "$OUT/clocks-during-bench.csv" 2>&1 &
  clocks=$!
  step 60 "${ours[@]}" $W/bin/winnow bench decode -m $model --device cuda -p 512 -n 128 -r 5 --json > "$OUT/bench-smollm2-q4_1.json" 2> "$OUT/bench-smollm2-q4_1.err"
  rc=$?
  kill $clocks 2>/dev/null
  note "bench SmolLM2 Q4_1 cuda: rc $rc — SM clock during it (MHz, min/median/max): $(awk -F', ' 'NR > 1 && $2 + 0 > 0 {print $2 + 0}' "$OUT/clocks-during-bench.csv" | sort -n | awk '{a[NR] = $1} END {if (NR) print a[1] "/" a[int((NR + 1) / 2)] "/" a[NR]; else print "none read"}')"
  # pp512 with prefill's attention as before the key tiles (attention_tiles.cu): a block per row and head, every key
  # read from L2 by every row
  step 30 "${ours[@]}" WINNOW_CUDA_TILED_ATTENTION=0 $W/bin/winnow bench decode -m $model --device cuda -p 512 -n 0 -r 5 --json \
    > "$OUT/bench-smollm2-q4_1-untiled-attention.json" 2> "$OUT/bench-smollm2-q4_1-untiled-attention.err"
  note "bench SmolLM2 Q4_1 cuda, untiled prefill attention (WINNOW_CUDA_TILED_ATTENTION=0): rc $? — pp512 $(grep -o '"tokens_per_s": *[0-9.]*' "$OUT/bench-smollm2-q4_1-untiled-attention.json" | head -1 | grep -o '[0-9.]*$') tok/s"
  # and with its Q4_1 products on the fp32 sgemm over a decoded copy, as before the split products took Q4_1 (block sums)
  step 30 "${ours[@]}" WINNOW_CUDA_SPLIT_PRODUCTS=0 $W/bin/winnow bench decode -m $model --device cuda -p 512 -n 0 -r 5 --json \
    > "$OUT/bench-smollm2-q4_1-sgemm-prefill.json" 2> "$OUT/bench-smollm2-q4_1-sgemm-prefill.err"
  note "bench SmolLM2 Q4_1 cuda, prefill on the fp32 sgemm (WINNOW_CUDA_SPLIT_PRODUCTS=0): rc $? — pp512 $(grep -o '"tokens_per_s": *[0-9.]*' "$OUT/bench-smollm2-q4_1-sgemm-prefill.json" | head -1 | grep -o '[0-9.]*$') tok/s"
  # tg128 again with one thing turned off, each in its own process (name, then the environment):
  #   nographs          WINNOW_CUDA_GRAPHS=0: no recorded decode step (what one launch per token buys)
  #   unfused-norm      WINNOW_CUDA_FUSE_NORM=0: the input norms as launches of their own (each GEMV block otherwise
  #                     recomputes its row's norm before its first weight load)
  #   unfused-qkv-rope  WINNOW_CUDA_FUSE_QKV_ROPE=0: the projections and rope + cache writes as two launches
  #   nopdl             WINNOW_CUDA_PDL=0: every kernel launched as <<<>>> (each launch waits for the previous kernel)
  #   noprefetch        WINNOW_CUDA_PREFETCH=0: the GEMVs no longer ask L2 for their weight rows before their PDL wait
  #                     (launch.cuh's pdl_wait_prefetching: the weights' DRAM latency overlapping the previous kernel)
  # and one thing turned on (off by default until measured):
  #   megakernel        WINNOW_CUDA_MEGAKERNEL=1: the step program (src/backend/cuda/step_program.h), the step's GEMV,
  #                     qkv and attention kernels as stages of one cooperative kernel with grid barriers between them
  #   megakernel-132    the same on 132 blocks, one per SM (WINNOW_CUDA_MEGAKERNEL_BLOCKS; fewer blocks to meet at
  #                     each barrier, fewer warps in flight)
  # (several variables of a variant are separated by commas)
  for variant in megakernel:WINNOW_CUDA_MEGAKERNEL=1 megakernel-132:WINNOW_CUDA_MEGAKERNEL=1,WINNOW_CUDA_MEGAKERNEL_BLOCKS=132 \
                 nographs:WINNOW_CUDA_GRAPHS=0 unfused-norm:WINNOW_CUDA_FUSE_NORM=0 unfused-qkv-rope:WINNOW_CUDA_FUSE_QKV_ROPE=0 nopdl:WINNOW_CUDA_PDL=0 \
                 noprefetch:WINNOW_CUDA_PREFETCH=0; do
    name=${variant%%:*}
    step 45 "${ours[@]}" $(echo "${variant#*:}" | tr , ' ') $W/bin/winnow bench decode -m $model --device cuda -p 0 -n 128 -r 5 --json > "$OUT/bench-smollm2-q4_1-$name.json" \
      2> "$OUT/bench-smollm2-q4_1-$name.err"
    note "bench SmolLM2 Q4_1 cuda, $name (${variant#*:}): rc $? — tg128 $(grep -o '"tokens_per_s": *[0-9.]*' "$OUT/bench-smollm2-q4_1-$name.json" | tail -1 | grep -o '[0-9.]*$') tok/s"
  done
  # llama.cpp's CUDA backend on the same file: pp512, tg128 (greedy with its own sampler, and decode only), flash
  # attention off and on; its greedy tokens from token 1 against winnow's tg_token_ids. Its KV cache is F16 by default,
  # winnow's F32: winnow's rows with an F16 cache too, for the like-for-like ratio
  if [ ${#llama_peer[@]} -gt 0 ]; then
    step 45 "${ours[@]}" $W/bin/winnow bench decode -m $model --device cuda -p 512 -n 128 -r 5 --kv-type f16 --json > "$OUT/bench-smollm2-q4_1-kvf16.json" \
      2> "$OUT/bench-smollm2-q4_1-kvf16.err"
    note "bench SmolLM2 Q4_1 cuda, F16 KV cache (llama.cpp's default): rc $?"
    step 60 "${llama_peer[@]}" bench $model --name smollm2-q4_1 --winnow-json "$OUT/bench-smollm2-q4_1.json" \
      --out "$OUT/llama-cpp-smollm2-q4_1.json" > "$OUT/llama-cpp-smollm2-q4_1.txt" 2> "$OUT/llama-cpp-smollm2-q4_1.err"
    note "llama.cpp peer, SmolLM2 Q4_1: rc $? — $(grep -E 'tg128 +greedy' "$OUT/llama-cpp-smollm2-q4_1.txt" | tr -s ' ' | tr '\n' ';' | cut -c1-240)"
  else
    note "llama.cpp peer: skipped ($( [ -f $peer_dir/llama-cpp-python-0.3.16-cuda-sm90.tar.xz ] && echo 'it did not load: llama-cpp-setup.txt' || echo 'no bench/device/extra/peer: prepare.sh found no ../shared/peers'))"
  fi
fi

# one GEMV per stored weight type on Llama-3-8B's shapes (4096x4096, 14336x4096; bench gemv, cycling over copies that
# span 512 MB so L2 does not serve them): the bandwidth each type's loads get. The preset types (llama.cpp's presets,
# read in their blocks since 2026-12-06, gemv_preset.cuh, written without a GPU) beside Q4_1, Q8_0 and BF16.
step 45 "${ours[@]}" $W/bin/winnow bench gemv --device cuda --json > "$OUT/bench-gemv.json" 2> "$OUT/bench-gemv.err"
note "bench gemv cuda: rc $? — GB/s at 14336x4096: $(python3 -c 'import json, sys; print(" ".join("%s %.0f" % (r["type"], r["gb_per_s"]) for r in json.load(open(sys.argv[1])) if r["shape"] == "14336x4096"))' "$OUT/bench-gemv.json" 2>&1 | cut -c1-200)"

# winnow logits --device cuda (prefill batches and decode steps) against llama.cpp's CPU logits of the tiny fp32 models,
# with the CPU's bound (ctest cli.logits_*_vs_llama_cpp); the random bf16 models get theirs against HF in step 6. And
# seven of llama.cpp's presets (its quantizer's Q4_K, Q6_K, Q5_0, and since 2026-12-07 Q2_K, Q3_K, Q5_K, IQ4_NL, IQ4_XS tensors)
# against llama.cpp on the same weights decoded to F32. tiny-qwen2 (q/k/v biases, rotate-half RoPE) and tiny-llama3
# (Llama 3.1's rope frequency factors in the three rotating kernels) since 2026-12-07 (tenth session); tiny-qwen3 (q/k
# head norms through rms_norm on [tokens x heads][head_dim] views, heads of 32 on a 64-wide embedding) since the eleventh;
# tiny-gemma3 (sliding-window layers in the three dense attention kernels, GeGLU, post-block norms, the embedding
# scale) since the twelfth, also against its float64 HF-formula oracle below; tiny-gemma2 (the scores' soft cap in the
# three dense kernels, the logits' cap op) since the thirteenth, likewise.
for tiny in tiny-llama tiny-gpt2 tiny-qwen2 tiny-llama3 tiny-qwen3 tiny-gemma3 tiny-gemma2 tiny-llama-k-q4_k_m tiny-llama-k-q6_k tiny-llama-k-q5_0 tiny-llama-k-q3_k_m tiny-llama-k-q2_k tiny-llama-k-iq4_nl tiny-llama-k-iq4_xs; do
  ref="$WINNOW_FIXTURE_DIR/$tiny-decoded-llamacpp.bin" # a preset: llama.cpp on its weights decoded to F32 (as ctest's)
  [ -f "$ref" ] || ref="$WINNOW_FIXTURE_DIR/$tiny-llamacpp.bin"
  max_rel=1e-3 && [ "$tiny" = tiny-gemma2 ] && max_rel=2e-3 # llama.cpp is 1.25e-3 from the float64 oracle there (TinyParity)
  step 30 python3 $here/logits_parity.py oracle --winnow "$W/bin/winnow" --libs "$libs" --device cuda --model "$WINNOW_FIXTURE_DIR/$tiny.gguf" \
    --ref "$ref" --max-rel $max_rel --json "$OUT/logits-$tiny-cuda-vs-llama-cpp.json" > "$OUT/logits-$tiny.txt" 2>&1
  note "logits $tiny cuda vs llama.cpp (cpu): rc $? — $(tail -1 "$OUT/logits-$tiny.txt" | cut -c1-160)"
done
# tiny-gemma3 and tiny-gemma2 against the float64 HF-formula oracle (tests/fixtures/gemma_numpy_oracle.py): 1e-5, where
# llama.cpp's fp16 GELU table leaves 6e-4 (ctest cli.logits_tiny-gemma*_vs_numpy)
for model in tiny-gemma3.gguf tiny-gemma3-hf tiny-gemma2.gguf tiny-gemma2-hf; do
  base="${model%.gguf}" && base="${base%-hf}" # the oracle's logits are the model's, whichever file it is read from
  step 30 python3 $here/logits_parity.py oracle --winnow "$W/bin/winnow" --libs "$libs" --device cuda --model "$WINNOW_FIXTURE_DIR/$model" \
    --ref "$WINNOW_FIXTURE_DIR/$base-numpy.bin" --max-rel 1e-5 --json "$OUT/logits-$model-cuda-vs-numpy.json" > "$OUT/logits-$model-numpy.txt" 2>&1
  note "logits $model cuda vs numpy (float64 HF formulas): rc $? — $(tail -1 "$OUT/logits-$model-numpy.txt" | cut -c1-160)"
done

# 4c. llama.cpp's K presets end to end (#11): the carried SmolLM2 Q4_1 written again as Q4_K_M and Q6_K by winnow
# quantize (its K-quant encoders match llama-quantize's types tensor for tensor: ctest cli.quantize_*), then the decode
# bench on each and greedy --device cuda vs --device cpu on Q4_K_M: the preset GEMVs (gemv_preset.cuh) in a whole step
if [ -f $model ]; then
  for preset in q4_k_m q6_k q3_k_m; do # q3_k_m: mostly IQ4_NL on SmolLM2's 576-wide rows, Q4_K/Q5_K in ffn_down
    kq=/tmp/smollm2-$preset.gguf
    step 20 "${ours[@]}" $W/bin/winnow quantize $model $kq $preset --allow-requantize --quiet > "$OUT/quantize-smollm2-$preset.txt" 2>&1
    note "quantize SmolLM2 -> $preset: rc $? — $(tail -1 "$OUT/quantize-smollm2-$preset.txt" | cut -c1-200)"
    [ -f $kq ] || continue
    step 40 "${ours[@]}" $W/bin/winnow bench decode -m $kq --device cuda -p 512 -n 128 -r 3 --json > "$OUT/bench-smollm2-$preset.json" 2> "$OUT/bench-smollm2-$preset.err"
    note "bench SmolLM2 $preset cuda: rc $? — tok/s (pp512, tg128): $(grep -o '"tokens_per_s": *[0-9.]*' "$OUT/bench-smollm2-$preset.json" | grep -o '[0-9.]*$' | tr '\n' ' ')"
  done
  if [ -f /tmp/smollm2-q4_k_m.gguf ]; then
    step 60 python3 $here/greedy_parity.py --winnow "$W/bin/winnow" --libs "$libs" --model /tmp/smollm2-q4_k_m.gguf \
      --prompts tests/fixtures/generation_prompts.txt --tokens 32 --out "$OUT/greedy-q4_k_m-cuda-vs-cpu.json" > "$OUT/greedy-q4_k_m.txt" 2>&1
    note "greedy SmolLM2 Q4_K_M cuda vs cpu: rc $? — $(tail -1 "$OUT/greedy-q4_k_m.txt")"
  fi
fi

# memcheck on the harness and one generate run before the HF step, which could otherwise take the time they need
san() { local t=$1 tool=$2 out=$3; shift 3; step "$t" compute-sanitizer --tool "$tool" --error-exitcode 9 "${ours[@]}" "$@" > "$OUT/$out" 2>&1; }
if command -v compute-sanitizer >/dev/null; then
  san 120 memcheck sanitizer-ops.txt $W/bin/winnow_ops_tests --gtest_filter='*cuda*:-*head_49152*:*cuda__sample*:*cuda__head_top_k*'
  note "compute-sanitizer memcheck, op harness: rc $? — $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer-ops.txt" | tail -1)"
  if [ -f $model ]; then
    san 60 memcheck sanitizer-generate.txt $W/bin/winnow generate -m $model -p "The capital of France is" -n 8 --device cuda
    note "compute-sanitizer memcheck, generate: rc $? — $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer-generate.txt" | tail -1)"
  fi
fi

t=$(cap 240)
if [ "$t" -gt 0 ]; then
  timeout -k 10 "$t" python3 $here/hf_models_and_peer.py --winnow "$W/bin/winnow" --libs "$libs" --out "$OUT" \
    ${llama_peer[*]:+--llama-peer "${llama_peer[*]}"} > "$OUT/hf.txt" 2>&1
  note "random bf16 models + HF peer: rc $? — see hf.txt"
else
  note "random bf16 models + HF peer: skipped, $SECONDS s spent"
fi

if command -v compute-sanitizer >/dev/null; then  # the sample op's harness cases are thousands of calls: under memcheck, a subset that takes every path of the kernel
  san 60 memcheck sanitizer-sample.txt $W/bin/winnow_gpu_tests --gtest_filter='CudaSample.SanitizerSubset:CudaSample.RecordedOpReplaysWithNewUAndLength'
  note "compute-sanitizer memcheck, sample op: rc $? — $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer-sample.txt" | tail -1)"
  [ -z "${WINNOW_ADAPTIVE_LOOP:-}" ] && {
    san 45 memcheck sanitizer-persistent.txt $W/bin/winnow_gpu_tests --gtest_filter='CudaAdaptiveHead.PersistentQueryRefusesAGridItCannotUse'
    note "compute-sanitizer memcheck, persistent adaptive query: rc $? — $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer-persistent.txt" | tail -1)"
  }
  # shared-memory races and barriers: the sample kernel (one 1024-thread block full of barriers and reused buffers), the
  # GEMVs that stage the input's RMSNorm in shared memory, the fused qkv + rope kernel (rope_store_kv uses none), and
  # prefill's tiled attention (key tiles refilled behind barriers)
  for tool in racecheck synccheck; do
    san 45 $tool sanitizer-sample-$tool.txt $W/bin/winnow_gpu_tests --gtest_filter='CudaSample.SanitizerSubset'
    note "compute-sanitizer $tool, sample op: rc $? — $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer-sample-$tool.txt" | tail -1)"
    san 45 $tool sanitizer-fused-norm-$tool.txt $W/bin/winnow_ops_tests --gtest_filter='*cuda__rms_norm_linear*_t1:*cuda__rms_norm_qkv_rope*smollm2*:*cuda__attention_F32_*prefill_100_at_20:*cuda__attention_BF16_llama1b_head128*'
    note "compute-sanitizer $tool, fused norm GEMVs, qkv + rope and tiled attention: rc $? — $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer-fused-norm-$tool.txt" | tail -1)"
  done
else
  note "compute-sanitizer: not on the PATH"
fi

# per-kernel times (#11): Nsight Compute's kernel durations over an 8-token greedy generation (about 1,400 kernels with
# the prompt and the recording step), summed per kernel, beside the measured tg time per token (the difference: gaps
# between kernels). Needs ncu's counters (Firecracker machines).
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | tail -1)
if [ -f $model ] && [ -n "$ncu" ]; then
  step 100 "$ncu" --clock-control none --metrics gpu__time_duration.sum --csv --print-units base --log-file "$OUT/ncu-generate.csv" \
    "${ours[@]}" $W/bin/winnow generate -m $model -p "The capital of France is" -n 8 --device cuda --temp 0 --ignore-eos > "$OUT/ncu-generate.out" 2>&1
  rc=$?
  timeout -k 5 30 python3 $here/kernel_times.py "$OUT/ncu-generate.csv" --tokens 8 --bench "$OUT/bench-smollm2-q4_1.json" --out "$OUT/kernel-times.json" \
    > "$OUT/kernel-times.txt" 2>&1
  note "per-kernel times (ncu): rc $rc/$? — $(head -1 "$OUT/kernel-times.txt" | cut -c1-160)"
  # and of one ~500-token prefill (pp512 is 46.8K tok/s on this file against llama.cpp's 44.2K, 76.0K on the bf16 shape:
  # which of the products, the attention and the small kernels takes prefill's time was never measured)
  long_prompt=$(for i in 1 2 3 4 5 6; do cat tests/fixtures/generation_prompts.txt; done | tr '\n' ' ' | cut -c1-2400)
  step 60 "$ncu" --clock-control none --metrics gpu__time_duration.sum --csv --print-units base --log-file "$OUT/ncu-prefill.csv" \
    "${ours[@]}" $W/bin/winnow generate -m $model -p "$long_prompt" -n 1 --device cuda --temp 0 --ignore-eos > "$OUT/ncu-prefill.out" 2>&1
  rc=$?
  timeout -k 5 30 python3 $here/kernel_times.py "$OUT/ncu-prefill.csv" --tokens 1 --out "$OUT/kernel-times-prefill.json" > "$OUT/kernel-times-prefill.txt" 2>&1
  note "per-kernel times of one prefill (ncu): rc $rc/$? — $(head -1 "$OUT/kernel-times-prefill.txt" | cut -c1-160)"
else
  note "per-kernel times: skipped (ncu not found, or no SmolLM2 file)"
fi

# the output head (#15): the fused head_top_k op and the adaptive warm-up kernel vs their twins, memcheck on a subset,
# and bench head --device cuda (fused vs cuBLAS + top_k vs linear + top_k; SmolLM2's head and a synthetic 128K x 4096).
# Last, so that the decoder's checks come back first; skipped when under ~2 minutes are left.
if [ $SECONDS -lt $((END - 110)) ]; then
  W=$W timeout $((END - SECONDS)) bash $here/head.sh > "$OUT/head.txt" 2>&1
  note "head (#15): rc $? — $(grep '^== ' "$OUT/head.txt" | tr '\n' ' ' | cut -c1-300)"
else
  note "head (#15): skipped, $SECONDS s already spent (run bench/device/head.sh in its own call)"
fi

echo
echo "==================== summary"
printf '%s\n' "${summary[@]}"
[ -f "$OUT/hf.txt" ] && tail -25 "$OUT/hf.txt"
for f in "$OUT"/bench-*.json; do case $f in *bench-head*) continue ;; esac; [ -s "$f" ] && python3 -c "
import json,sys
for r in json.load(open('$f')): print('%-36s %-6s %9.1f tok/s %7.1f us/tok  %s' % ('$(basename $f .json)', r['test'], r['tokens_per_s'], 1e6/r['tokens_per_s'], ('%.0f%% of copy roofline' % (100*r['roofline_fraction'])) if 'roofline_fraction' in r else ''))"; done
results_pack "${summary[@]}"
