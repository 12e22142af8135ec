#!/usr/bin/env bash
# Builds winnow and runs the whole test suite (ctest labels: unit, model, gpu; gpu tests skip without a GPU).
# Installs what is missing first (scripts/setup.sh: the test tooling and the peer engine, beyond what the README's
# first command installed), and fetches the default model so the model-parity tests run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
scripts/fetch-model.sh >/dev/null
build="${WINNOW_BUILD_DIR:-build}"
# The README's first command configures this build without tests and benchmarks (their libraries come with
# scripts/setup.sh): switch them on.
# the CUDA sources compile wherever nvcc exists, GPU or not (the gpu tests then skip with the reason)
cuda=OFF
if command -v nvcc >/dev/null || [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]; then cuda=ON; fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DWINNOW_BUILD_TESTS=ON -DWINNOW_BUILD_BENCH=ON -DWINNOW_CUDA=$cuda
cmake --build "$build" -j "$(nproc)"
# The model was fetched above: a missing model or fixture file is a failure, never a skip (tests/model/require_input.h).
WINNOW_REQUIRE_MODELS="${WINNOW_REQUIRE_MODELS:-1}" ctest --test-dir "$build" --output-on-failure -j 1 "$@"
