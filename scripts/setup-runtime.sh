#!/usr/bin/env bash
# Installs what building and running winnow needs on a fresh Debian 12 machine, and nothing more: a C++ toolchain,
# CMake and the libraries winnow links, from Debian's packages; python3 (standard library only) and CA certificates
# for models/fetch-default-model.sh. The README's first command runs this; the test tooling (GoogleTest, the Python
# venv with the peer engine llama-cpp-python, gguf-py, numpy, pytest, ...) is scripts/setup.sh's, which
# scripts/test.sh runs. Safe to run again: nothing is installed twice.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libboost-program-options-dev nlohmann-json3-dev libpcre2-dev libsentencepiece-dev libopenblas-dev zlib1g-dev libutf8proc-dev
  python3 ca-certificates
)
# Extra packages from the caller (scripts/setup.sh adds the test tooling's), installed in the same apt run. Alone,
# this installs without Debian's recommended extras (fakeroot, manpages, ...: nothing winnow uses), which saves time
# on the first install; with the test tooling, apt installs as it always did.
apt_options=(--no-install-recommends)
if [ $# -gt 0 ]; then apt_options=(); fi
packages+=("$@")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  echo "installing ${#missing[@]} Debian packages: ${missing[*]}" >&2
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${apt_options[@]}" "${missing[@]}"
fi
