#!/usr/bin/env bash
# Installs everything the tests and the tools around winnow need on a fresh Debian 12 machine: what building and
# running winnow needs (scripts/setup-runtime.sh, the README's first command), plus the test tooling: GoogleTest and
# Google Benchmark from Debian's packages, and the Python venv (.venv: gguf-py, numpy, tokenizers, pytest, and the
# peer engine llama-cpp-python, built from source once, ~5 min on 2 cores, then cached; scripts/python-env.sh).
# scripts/test.sh and scripts/sanitize.sh run this. Safe to run again: each step is skipped when its result is there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

"$here/setup-runtime.sh" ninja-build libgtest-dev libgmock-dev googletest libbenchmark-dev sentencepiece pybind11-dev libboost-context-dev \
  python3-venv unzip

# Python tooling lives in its own venv so it never disturbs the system interpreter.
"$here/python-env.sh"
