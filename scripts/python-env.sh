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
"$py" -m pip install -q "numpy<3" "gguf==0.17.1" "safetensors>=0.4" "tokenizers>=0.20" "matplotlib>=3.8"

if ! "$py" -c "import llama_cpp" 2>/dev/null; then
  mkdir -p "$wheels"
  if ! ls "$wheels"/llama_cpp_python-"$LLAMA_CPP_PYTHON_VERSION"-*.whl >/dev/null 2>&1; then
    echo "building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION from source (once; cached in $wheels)"
    # CPU-only build of the peer engine; nvcc on PATH must not switch on its CUDA backend.
    CMAKE_ARGS="-DGGML_CUDA=OFF -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
      CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
      "$py" -m pip wheel -q --no-deps -w "$wheels" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
  fi
  "$py" -m pip install -q "$wheels"/llama_cpp_python-"$LLAMA_CPP_PYTHON_VERSION"-*.whl
  "$py" -m pip install -q "typing-extensions>=4.5" "diskcache>=5.6" "jinja2>=2.11"
fi
