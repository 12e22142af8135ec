#!/usr/bin/env bash
# Builds llama-cpp-python tuned for this machine's CPU (GGML_NATIVE: AVX-512 / VNNI kernels where the CPU has them)
# for the speed comparison, and prints the directory to put on PYTHONPATH. The tests' oracle stays the pinned AVX2
# build (scripts/python-env.sh): parity needs the same kernels on every host, a speed comparison needs llama.cpp at
# its best on this one. Built once per CPU flag set (~5 min on 2 cores) and cached beside the oracle's wheel.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py="$root/.venv/bin/python"
[ -x "$py" ] || { echo "llama-native: $py not found (run scripts/setup.sh first)" >&2; exit 1; }
version=0.3.16
flags_hash=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | sort | sha256sum | cut -c1-12)
dir="${WINNOW_WHEEL_CACHE:-$HOME/.cache/winnow/wheels}/native-$flags_hash"
if [ ! -f "$dir/site/.complete" ]; then
  mkdir -p "$dir"
  if ! ls "$dir"/llama_cpp_python-"$version"-*.whl >/dev/null 2>&1; then
    echo "llama-native: building llama-cpp-python $version with GGML_NATIVE=ON (once; cached in $dir)" >&2
    CMAKE_ARGS="-DGGML_CUDA=OFF -DGGML_NATIVE=ON -DGGML_BACKEND_DL=OFF -DGGML_OPENMP=ON -DLLAMA_BUILD_TESTS=OFF \
-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
      "$py" -m pip wheel -q --no-deps -w "$dir" "llama-cpp-python==$version" >&2
  fi
  rm -rf "$dir/site.tmp"
  "$py" -m pip install -q --no-deps --target "$dir/site.tmp" "$dir"/llama_cpp_python-"$version"-*.whl >&2
  touch "$dir/site.tmp/.complete"
  rm -rf "$dir/site" && mv "$dir/site.tmp" "$dir/site"
fi
echo "$dir/site"
