#!/usr/bin/env bash
# Installs winnow from BUILD into a prefix, builds the Python module against it with `pip install` (scikit-build-core,
# pybind11) into a private target folder, and runs the module's pytest suite with it.
#   python_module.sh PYTHON BUILD SOURCE WORK DEFAULT_MODEL TINY_MODEL
set -euo pipefail
py=$1 build=$2 source=$3 work=$4 model=$5 tiny=$6
rm -rf "$work" && mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
CMAKE_PREFIX_PATH="$work/prefix" "$py" -m pip install -q --no-build-isolation --target "$work/site" "$source/bindings/python"
cd "$work"
# an AddressSanitizer build (scripts/sanitize.sh, tests/api/CMakeLists.txt): the ASan runtime (and libstdc++) must be
# the first libraries in the process, and CPython's own allocations alive at exit are not leaks of winnow's
# (LeakSanitizer off for this interpreter only)
if [[ -n "${WINNOW_TEST_PRELOAD:-}" ]]; then
  export LD_PRELOAD="$WINNOW_TEST_PRELOAD" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
fi
PYTHONPATH="$work/site" WINNOW_TEST_MODEL="$model" WINNOW_CLI="$work/prefix/bin/winnow" WINNOW_TINY_MODEL="$tiny" \
  "$py" -m pytest -q -p no:cacheprovider "$source/bindings/python/tests"
