#!/usr/bin/env bash
# Creates .venv with the Python tools used by fixtures, parity oracles and plots.
# llama-cpp-python (the peer engine) is built from source once and its wheel kept in
# ~/.cache/winnow/wheels, so later runs (and CI on the same machine) reinstall it in seconds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
venv="$root/.venv"
LLAMA_CPP_PYTHON_VERSION=0.3.16
wheels="${WINNOW_WHEEL_CACHE:-$HOME/.cache/winnow/wheels}"

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py="$venv/bin/python"
"$py" -m pip install -q --upgrade pip
# jinja2: the reference renderer of chat templates (tests/templates compares winnow's engine with it)
"$py" -m pip install -q "numpy<3" "gguf==0.17.1" "safetensors>=0.4" "tokenizers>=0.20" "matplotlib>=3.8" \
  "scikit-build-core>=0.10" "pybind11>=2.11" "pytest>=7" "jinja2>=3.1"

# The oracle is built in one pinned CPU configuration, the same on every x86-64 machine: AVX2 + FMA + F16C, no
# native tuning. A native build picks other kernels on AVX-512 hosts (other rounding of the q8 activations and
# other summation orders), so bit-level parity claimed on one host failed on another. The wheel cache and the venv
# are keyed by this configuration, so an older native build is never reused.
llama_config="avx2-pinned-1"
llama_cmake_args="-DGGML_CUDA=OFF -DGGML_NATIVE=OFF -DGGML_CPU_ALL_VARIANTS=OFF -DGGML_BACKEND_DL=OFF \
-DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_BMI2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF \
-DGGML_OPENMP=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF"
marker="$venv/.llama-cpp-config"
if ! "$py" -c "import llama_cpp" 2>/dev/null || [ "$(cat "$marker" 2>/dev/null)" != "$llama_config" ]; then
  cache="$wheels/$llama_config"
  mkdir -p "$cache"
  if ! ls "$cache"/llama_cpp_python-"$LLAMA_CPP_PYTHON_VERSION"-*.whl >/dev/null 2>&1; then
    echo "building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION ($llama_config) from source (once; cached in $cache)"
    # CPU-only build of the peer engine; nvcc on PATH must not switch on its CUDA backend.
    CMAKE_ARGS="$llama_cmake_args" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
      "$py" -m pip wheel -q --no-deps -w "$cache" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
  fi
  "$py" -m pip install -q --force-reinstall --no-deps "$cache"/llama_cpp_python-"$LLAMA_CPP_PYTHON_VERSION"-*.whl
  "$py" -m pip install -q "typing-extensions>=4.5" "diskcache>=5.6" "jinja2>=2.11"
  echo "$llama_config" > "$marker"
fi
