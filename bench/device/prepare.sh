#!/usr/bin/env bash
# Prepares everything the GPU machine needs for bench/device/run.sh, on this (GPU-less) machine:
#   bench/device/payload/bundle.tar.xz   winnow, the op harness and the GPU tests, built for sm_90a, with the
#                                        libraries the GPU machine lacks (../shared/tools/device-bundle.sh)
#   bench/device/payload/fixtures/       the tiny test models (written by gguf-py here; the GPU machine has no gguf-py)
#   bench/device/payload/head-text.txt   bench/device/head.sh's inputs: the text its query windows slide over, and
#   bench/device/payload/head-queries.bin  those windows' SmolLM2 hidden states (2.3 MB), computed here on the CPU
#   bench/device/model-a, model-b        the two halves of SmolLM2-135M Q4_1 (85 MB: over one call's 64 MiB)
#   bench/device/extra/sparse-eval.txt   bench/device/sparse.sh's end-to-end text (the vim manual's chapters 1-19, the
#                                        CPU SPION report's evaluation text), where vim-runtime is installed
# All four are ignored by git and travel with the device tool's `carry` (call 1 is near the 64 MiB limit):
#   call 1: carry ["bench/device/payload", "bench/device/model-a"], command: true      (the machine keeps them)
#   call 2: carry ["bench/device/model-b", "bench/device/extra"], command: bash bench/device/run.sh
#   call 3 (if time is left): command: bash bench/device/sparse.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
build="${WINNOW_BUILD_DIR:-build}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DWINNOW_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a >/dev/null
cmake --build "$build" -j "$(nproc)" --target winnow winnow_ops_tests winnow_gpu_tests
[ -f "$build/fixtures/tiny-llama-q4_1.gguf" ] || ctest --test-dir "$build" -R "fixture.tiny_models" >/dev/null
bundler="$root/../shared/tools/device-bundle.sh"
[ -x "$bundler" ] || { echo "prepare: $bundler not found (it comes with the workplace's shared folder)" >&2; exit 1; }
rm -rf bench/device/payload && mkdir -p bench/device/payload/fixtures
"$bundler" bench/device/payload "$build/src/winnow" "$build/tests/winnow_ops_tests" "$build/tests/winnow_gpu_tests" >/dev/null
cp -r "$build"/fixtures/tiny-* bench/device/payload/fixtures/
model=$(scripts/fetch-model.sh)
rm -rf bench/device/model-a bench/device/model-b && mkdir -p bench/device/model-a bench/device/model-b
size=$(stat -c %s "$model")
head -c $((size / 2)) "$model" > bench/device/model-a/part
tail -c +$((size / 2 + 1)) "$model" > bench/device/model-b/part
sha256sum "$model" | cut -d' ' -f1 > bench/device/payload/model.sha256
# head.sh's text: bench head's default (the GPL-3 text) where the system has it, else a text the checkout carries; the
# hidden states by bench head --collect-only, whose cache is keyed by the model's and the text's content and the
# window plan, so head.sh (same defaults, same text, the joined model) reads them instead of running the CUDA forward
text=/usr/share/common-licenses/GPL-3
[ -f "$text" ] || text=docs/architecture.md
cp "$text" bench/device/payload/head-text.txt
"$build/src/winnow" bench head -m "$model" --device cpu --query-device cpu --collect-only \
  --text bench/device/payload/head-text.txt --cache bench/device/payload/head-queries.bin
# sparse.sh's text: the evaluation half of bench/sparse/run.sh's texts (the calibration never saw it)
rm -rf bench/device/extra && mkdir -p bench/device/extra
doc=/usr/share/vim/vim90/doc
if [ -f $doc/usr_01.txt ]; then cat $doc/usr_0[1-9].txt $doc/usr_1*.txt > bench/device/extra/sparse-eval.txt
else echo "prepare: $doc missing (apt-get install vim-runtime): sparse.sh will skip its end-to-end run" >&2; fi
du -sh bench/device/payload bench/device/model-a bench/device/model-b bench/device/extra
