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
ctest --test-dir "$build" --output-on-failure -j 1 "$@"
