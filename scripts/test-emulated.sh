#!/usr/bin/env bash
# Runs the CUDA backend's kernels on the CPU: builds the library with the SIMT emulator (-DWINNOW_CUDA_EMULATOR=ON,
# src/backend/cuda/emulator/simt.h) in its own folder (build-emu) and runs the tests that otherwise need a GPU: the
# emulator's own tests, the GPU tests (tests/gpu) on the tiny fixture models, and the op harness's cuda cases against
# the double reference. Correctness only: nothing the emulator times says anything about a GPU.
#
# Left out for time (a GPU thread is a fiber here: SmolLM2's 135M weights take ~3 s per token): the GPU tests on
# SmolLM2 (their names say SmolLM2; WINNOW_DEFAULT_MODEL points nowhere, so the tests that add SmolLM2 when it is
# present run on the tiny models only) and the timing tests. `scripts/test-emulated.sh --all` runs them too (~1 h);
# `--asan` runs the default set under AddressSanitizer (below).
# `--racecheck` runs the default set under the emulator's race detector instead (src/backend/cuda/emulator/racecheck.h:
# compute-sanitizer's racecheck on the CPU, for shared and global memory), in build-emu-race, forward order only.
# Needs the CUDA toolkit's headers and Boost.Context (scripts/setup.sh installs it). Other arguments go to ctest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build="${WINNOW_EMU_BUILD_DIR:-build-emu}"
cuda_include="${CUDA_HOME:-/usr/local/cuda}/include"
if ! command -v nvcc >/dev/null && [ ! -f "$cuda_include/cuda_runtime.h" ]; then
  echo "test-emulated.sh: no CUDA toolkit headers (cuda_runtime.h) on this machine: nothing to compile the kernels against" >&2
  exit 1
fi
exclude=(-E 'SmolLM2|SmolLm2|TimePer')
flags=(-DCMAKE_BUILD_TYPE=Release)
racecheck=0
case "${1:-}" in
  --all)
    exclude=()
    shift ;;
  --asan)
    # compute-sanitizer's memcheck on the CPU: the emulated kernels under AddressSanitizer + UBSan, device memory exactly
    # the bytes asked for (runtime_api.cpp), in build-emu-asan; ~3x slower. The trap test is left out: an exception
    # thrown inside a fiber confuses ASan's no-return handling (a false stack-buffer-underflow).
    build="${WINNOW_EMU_BUILD_DIR:-build-emu-asan}"
    san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
    flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g" "-DCMAKE_CXX_FLAGS=$san"
           "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined" "-DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=address,undefined")
    exclude=(-E 'SmolLM2|SmolLm2|TimePer|DeadlocksExitedLanesAndTraps')
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}" UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
    export WINNOW_DEFAULT_MODEL=/nonexistent/smollm2-left-out-of-the-emulated-run.gguf
    shift ;;
  --racecheck)
    # the kernel sources instrumented (GCC's -fsanitize=thread, its calls caught by racecheck.cpp): every pair of
    # accesses by two GPU threads that no barrier, collective or atomic orders is a launch error naming both; -g1 so
    # that the report gives their source lines
    build="${WINNOW_EMU_BUILD_DIR:-build-emu-race}"
    flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1" -DWINNOW_EMU_RACECHECK=ON)
    racecheck=1
    export WINNOW_DEFAULT_MODEL=/nonexistent/smollm2-left-out-of-the-emulated-run.gguf
    shift ;;
  *)
    export WINNOW_DEFAULT_MODEL=/nonexistent/smollm2-left-out-of-the-emulated-run.gguf ;;
esac
cmake -S . -B "$build" -G Ninja "${flags[@]}" -DWINNOW_BUILD_TESTS=ON -DWINNOW_BUILD_BENCH=OFF -DWINNOW_CUDA=OFF \
  -DWINNOW_CUDA_EMULATOR=ON >/dev/null
# Under the race detector the whole set takes about an hour (its records cost several times the emulation), so CI runs
# WINNOW_RACECHECK_SCOPE=quick: the emulator's and the detector's own tests, and the GPU tests that take seconds to a few
# minutes there
# (the tiny decoders and the step program on them, the fused head, the adaptive head's kernels and its persistent query, dequantize,
# the sample op's slices handing over to its last block,
# and the op harness's split and block-sparse decode attention, the tiled prefill attention); the other op cases and the long decoder tests run on
# demand (scope all, the default; the sample op's own GPU tests take 5+ min each even without the detector).
quick=0
[ "$racecheck" = 1 ] && [ "${WINNOW_RACECHECK_SCOPE:-all}" = quick ] && quick=1
targets=(winnow winnow_emulator_tests winnow_gpu_tests winnow_ops_tests)
# the quick scope runs no command-line test: the CLI is left unbuilt
[ "$quick" = 1 ] && targets=(winnow_emulator_tests winnow_gpu_tests winnow_ops_tests)
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"
export WINNOW_REQUIRE_MODELS="${WINNOW_REQUIRE_MODELS:-1}"
# Each emulated test is one process on one core (a GPU thread is a fiber of the calling thread), so the tests run side
# by side, one per core: on the 2-core CI machine this halves the stage (the op harness's cuda cases: 346 s at -j 1,
# 168 s at -j 2). WINNOW_EMU_TEST_JOBS=1 runs them one at a time.
jobs="${WINNOW_EMU_TEST_JOBS:-$(nproc)}"
if [ "$quick" = 1 ]; then
  ctest --test-dir "$build" --output-on-failure -j "$jobs" -L emulator "$@"
  ctest --test-dir "$build" --output-on-failure -j "$jobs" "$@" -R '^gpu\.(CudaDecoder\.(Tiny|Megakernel)|CudaHead\.(Random|NaN|Refuses)|CudaAdaptiveHeadKernels|CudaAdaptiveWarmUp|CudaAdaptiveRounds|CudaAdaptiveHead\.(WarmUp|PersistentQueryEquals)|AllTypes/CudaDequantize|CudaSample\.SlicesSubset)'
  # the tiny decoders' contexts never reach a second attention split: the split decode (its last block merges the
  # others' results behind fences and a counter) and a block-sparse case from the op harness (the same merge); and the
  # GEMV's staged Q8_0 / Q4_0 walk over rows at a 2-byte offset, two chunks a row (a warp's shared slice, __syncwarp);
  # prefill's tiled attention (key tiles in shared memory, refilled behind a barrier) and split products
  ctest --test-dir "$build" --output-on-failure -j "$jobs" "$@" \
    -R '^ops\..*cuda__(attention_F32_(smollm2_decode_pos300|split_decode_repeated|grouped_spion_b64_decode_pos3000|smollm2_prefill_100_at_20|window40_prefill_100_at_20|window1000_mqa_decode_pos70000)|linear_Q(8|4)_0_odd_long_13x1056_t7|linear_(BF16|F16)_smollm2_q_576x576_t9)'
  exit 0
fi
ctest --test-dir "$build" --output-on-failure -j "$jobs" -L 'emulator|gpu' "${exclude[@]}" "$@"
ctest --test-dir "$build" --output-on-failure -j "$jobs" -R '^ops\..*cuda' "$@"
# the race detector sees a race whatever the order; the plain build's second order finds races that change answers
[ "$racecheck" = 1 ] && exit 0
# again with the threads between meeting points, and the blocks, in reverse order: a race that changes an answer
# (a shared-memory read that no barrier separates from its write) fails here (scheduler.cpp, WINNOW_EMU_SCHEDULE).
# Less the sample op's two 49,152-logit cases (93 s each, a third of this pass): their 24 slices' hand-over to the last
# block is checked under the race detector instead (CudaSample.SlicesSubset, 3 slices, in the quick scope), which
# reports a race whatever the order; the 1,003-logit cases (one slice) still run here in reverse.
WINNOW_EMU_SCHEDULE=reverse ctest --test-dir "$build" --output-on-failure -j "$jobs" -R '^ops\..*cuda' \
  -E 'cuda__sample_F32_[a-z_]+_vocab49152' "$@"
