#!/usr/bin/env bash
# Builds winnow and runs the whole test suite (ctest labels: unit, model, gpu; gpu tests skip without a GPU).
# Installs what is missing first, and fetches the default model so the model-parity tests run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
scripts/fetch-model.sh >/dev/null
build="${WINNOW_BUILD_DIR:-build}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$(nproc)"
# The model was fetched above: a missing model or fixture file is a failure, never a skip (tests/model/require_input.h).
WINNOW_REQUIRE_MODELS="${WINNOW_REQUIRE_MODELS:-1}" ctest --test-dir "$build" --output-on-failure -j 1 "$@"
