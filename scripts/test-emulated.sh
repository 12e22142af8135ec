#!/usr/bin/env bash
# Runs the CUDA backend's kernels on the CPU: builds the library with the SIMT emulator (-DWINNOW_CUDA_EMULATOR=ON,
# src/backend/cuda/emulator/simt.h) in its own folder (build-emu) and runs the tests that otherwise need a GPU: the
# emulator's own tests, the GPU tests (tests/gpu) on the tiny fixture models, and the op harness's cuda cases against
# the double reference. Correctness only: nothing the emulator times says anything about a GPU.
#
# Left out for time (a GPU thread is a fiber here: SmolLM2's 135M weights take ~3 s per token): the GPU tests on
# SmolLM2 (their names say SmolLM2; WINNOW_DEFAULT_MODEL points nowhere, so the tests that add SmolLM2 when it is
# present run on the tiny models only) and the timing tests. `scripts/test-emulated.sh --all` runs them too (~1 h).
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
if [ "${1:-}" = "--all" ]; then
  exclude=()
  shift
else
  export WINNOW_DEFAULT_MODEL=/nonexistent/smollm2-left-out-of-the-emulated-run.gguf
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DWINNOW_BUILD_TESTS=ON -DWINNOW_BUILD_BENCH=OFF -DWINNOW_CUDA=OFF \
  -DWINNOW_CUDA_EMULATOR=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target winnow winnow_emulator_tests winnow_gpu_tests winnow_ops_tests
export WINNOW_REQUIRE_MODELS="${WINNOW_REQUIRE_MODELS:-1}"
ctest --test-dir "$build" --output-on-failure -j 1 -L 'emulator|gpu' "${exclude[@]}" "$@"
ctest --test-dir "$build" --output-on-failure -j 1 -R '^ops\..*cuda' "$@"
