#!/usr/bin/env bash
# Installs everything winnow needs on a fresh Debian 12 machine: build tools and C++ libraries from
# Debian's packages, the Python tooling (fixtures, peer engine) from PyPI. Safe to run again: each step
# is skipped when its result is already there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

apt_packages=(
  build-essential cmake ninja-build pkg-config
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  libboost-program-options-dev nlohmann-json3-dev libpcre2-dev
  libsentencepiece-dev sentencepiece libopenblas-dev pybind11-dev zlib1g-dev
  python3-venv unzip
)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi

# Python tooling lives in its own venv so it never disturbs the system interpreter.
"$here/python-env.sh"
