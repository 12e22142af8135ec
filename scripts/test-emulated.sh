#!/usr/bin/env bash
# Runs the CUDA backend's kernels on the CPU: builds the library with the SIMT emulator (-DWINNOW_CUDA_EMULATOR=ON,
# src/backend/cuda/emulator/simt.h) in its own folder and runs the tests that otherwise need a GPU: the emulator's own
# tests, the GPU tests (tests/gpu) and the op harness's cuda cases against the double reference. Correctness only: the
# emulator times nothing that means anything about a GPU. Needs the CUDA toolkit's headers (nvcc's machine) and
# Boost.Context (scripts/setup.sh installs it). Extra arguments go to ctest (e.g. -R CudaDecoder).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build="${WINNOW_EMU_BUILD_DIR:-build-emu}"
if ! command -v nvcc >/dev/null && [ ! -d "${CUDA_HOME:-/usr/local/cuda}/include" ]; then
  echo "test-emulated.sh: no CUDA toolkit headers on this machine; nothing to emulate" >&2
  exit 1
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DWINNOW_BUILD_TESTS=ON -DWINNOW_BUILD_BENCH=OFF -DWINNOW_CUDA=OFF \
  -DWINNOW_CUDA_EMULATOR=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target winnow_emulator_tests winnow_gpu_tests winnow_ops_tests
WINNOW_REQUIRE_MODELS="${WINNOW_REQUIRE_MODELS:-1}" ctest --test-dir "$build" --output-on-failure -j 1 -L 'emulator|gpu' "$@"
WINNOW_REQUIRE_MODELS="${WINNOW_REQUIRE_MODELS:-1}" ctest --test-dir "$build" --output-on-failure -j 1 -R '^ops\..*cuda' "$@"
