#!/usr/bin/env bash
# Builds winnow and runs the whole test suite (ctest labels: unit, model, gpu; gpu tests skip without a GPU).
# Installs what is missing first (scripts/setup.sh: the test tooling and the peer engine, beyond what the README's
# first command installed), and fetches the default model and llama.cpp's large tokenizer fixtures so the model-parity
# and tokenizer-parity tests run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
scripts/fetch-model.sh >/dev/null
scripts/fetch-vocab.sh >/dev/null
build="${WINNOW_BUILD_DIR:-build}"
# The README's first command configures this build without tests and benchmarks (their libraries come with
# scripts/setup.sh): switch them on.
# the CUDA sources compile wherever nvcc exists, GPU or not (the gpu tests then skip with the reason)
cuda=OFF
if command -v nvcc >/dev/null || [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]; then cuda=ON; fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DWINNOW_BUILD_TESTS=ON -DWINNOW_BUILD_BENCH=ON -DWINNOW_CUDA=$cuda
cmake --build "$build" -j "$(nproc)"
# The model was fetched above: a missing model or fixture file is a failure, never a skip (tests/model/require_input.h).
export WINNOW_REQUIRE_MODELS="${WINNOW_REQUIRE_MODELS:-1}"
# The unit-labelled entries (2,400, a tenth of a second each on average, most of it process start-up, and mostly one
# thread) run WINNOW_TEST_JOBS at a time (default: the core count), with OpenMP's threads sleeping instead of spinning
# while they wait (OMP_WAIT_POLICY=passive, unless set): two processes' spinning barriers on 2 cores wait on each
# other's descheduled threads, and made a 0.1 s decoder test take 62 s. 228 s in CI on the 2-core VM (2026-12-06), where one at a
# time they took 377 s. The model- and gpu-labelled ones, which use every core through OpenMP, run one at a time
# after them, as before. Arguments go to both ctest runs (e.g. -R to select); both run even when the first fails, and
# the script fails if either did.
rc=0
OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}" \
  ctest --test-dir "$build" --output-on-failure -j "${WINNOW_TEST_JOBS:-$(nproc)}" -L '^unit$' "$@" || rc=$?
ctest --test-dir "$build" --output-on-failure -j 1 -LE '^unit$' "$@" || rc=$?
exit "$rc"
