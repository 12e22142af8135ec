#!/usr/bin/env bash
# Prepares everything the GPU machine needs for bench/device/run.sh, on this (GPU-less) machine:
#   bench/device/payload/bundle.tar.xz   winnow, the op harness and the GPU tests, built for sm_90a, with the
#                                        libraries the GPU machine lacks (../shared/tools/device-bundle.sh)
#   bench/device/payload/fixtures/       the tiny test models (written by gguf-py here; the GPU machine has no gguf-py)
#   bench/device/payload/head-text.txt   bench/device/head.sh's inputs: the text its query windows slide over, and
#   bench/device/payload/head-queries.bin  those windows' SmolLM2 hidden states (2.3 MB), computed here on the CPU
#   bench/device/payload/head-basis.gguf   a PCA basis of SmolLM2's hidden states and the fast head's factors tuned in
#   bench/device/payload/head.json         it (calibrate-head --fit-head-basis, the tuning region only; ~2 min), for
#                                          head.sh's adaptive rows and generate in that basis (#15)
#   bench/device/model-a, model-b(, -c)  SmolLM2-135M Q4_1 (98 MB; 93 MB gzipped) in parts that fit the calls (printed last)
#   bench/device/extra/sparse-eval.txt   bench/device/sparse.sh's end-to-end text (the vim manual's chapters 1-19, the
#                                        CPU SPION report's evaluation text), where vim-runtime is installed
#   bench/device/extra/peer/             the llama.cpp peer: llama-cpp-python built with CUDA for sm_90 (../shared/peers),
#                                        diskcache, gguf-py (31 MB)
# All are ignored by git and travel with the device tool's `carry`; a call carries the working tree too, 64 MiB in all,
# so the model's parts are sized to fill the calls (the plan is printed last):
#   call 1: carry ["bench/device/payload", "bench/device/model-a"], command: true      (the machine keeps them)
#   call 2: carry ["bench/device/model-b", "bench/device/extra"], command: bash bench/device/run.sh
#           (or command true, and call 2b: carry ["bench/device/model-c"], command: bash bench/device/run.sh)
#   then (if time is left): command: bash bench/device/sparse.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
build="${WINNOW_BUILD_DIR:-build}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DWINNOW_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a >/dev/null
cmake --build "$build" -j "$(nproc)" --target winnow winnow_ops_tests winnow_gpu_tests
[ -f "$build/fixtures/tiny-gemma2.gguf" ] || ctest --test-dir "$build" -R "fixture.tiny_models" >/dev/null
# llama.cpp's logits of the tiny models (run.sh step 4b compares winnow logits --device cuda with them), and the float64
# HF-formula logits of tiny-gemma3 and tiny-gemma2
[ -f "$build/fixtures/tiny-gemma2-llamacpp.bin" ] || ctest --test-dir "$build" -R "fixture.llama_oracle_tiny" >/dev/null
[ -f "$build/fixtures/tiny-gemma2-numpy.bin" ] || ctest --test-dir "$build" -R "fixture.tiny-gemma._numpy_oracle" >/dev/null
bundler="$root/../shared/tools/device-bundle.sh"
[ -x "$bundler" ] || { echo "prepare: $bundler not found (it comes with the workplace's shared folder)" >&2; exit 1; }
rm -rf bench/device/payload && mkdir -p bench/device/payload/fixtures
"$bundler" bench/device/payload "$build/src/winnow" "$build/tests/winnow_ops_tests" "$build/tests/winnow_gpu_tests" >/dev/null
# The three programs each link the same CUDA fatbin (21 MB of their 25 on 2026-12-06): repacked as one xz stream whose
# dictionary spans all three, the copies cost nothing (26 -> 14 MB), which keeps SmolLM2 within three calls. (Python's
# tarfile, which unpacks it there, reads any dictionary size; this one needs 192 MiB of memory to unpack.)
xz -dc bench/device/payload/bundle.tar.xz | xz -T2 --lzma2=preset=9,dict=192MiB > bench/device/payload/bundle.tar.xz.new
mv bench/device/payload/bundle.tar.xz.new bench/device/payload/bundle.tar.xz
# The tiny models and llama.cpp's logits of them, less what no GPU step reads: the K presets' F32 source and their
# gguf-py-decoded copies (5 MB each, 40 MB in all: with them the payload left no room for the model in a call), and
# the presets run.sh's logits step does not take (it compares q4_k_m, q6_k and q5_0 with their -decoded-llamacpp.bin).
for f in "$build"/fixtures/tiny-*; do
  case "$(basename "$f")" in
    tiny-llama-k.gguf | *-decoded.gguf) continue ;;
    tiny-llama-k-q4_k_m* | tiny-llama-k-q6_k* | tiny-llama-k-q5_0* | tiny-llama-k-q3_k_m* | tiny-llama-k-q2_k* | tiny-llama-k-iq4_nl* | tiny-llama-k-iq4_xs*) ;;
    tiny-llama-k-*) continue ;;
  esac
  cp -r "$f" bench/device/payload/fixtures/
done
model=$(scripts/fetch-model.sh)
sha256sum "$model" | cut -d' ' -f1 > bench/device/payload/model.sha256
# head.sh's text: bench head's default (the GPL-3 text) where the system has it, else a text the checkout carries; the
# hidden states by bench head --collect-only, whose cache is keyed by the model's and the text's content and the
# window plan, so head.sh (same defaults, same text, the joined model) reads them instead of running the CUDA forward
text=/usr/share/common-licenses/GPL-3
[ -f "$text" ] || text=docs/architecture.md
cp "$text" bench/device/payload/head-text.txt
"$build/src/winnow" bench head -m "$model" --device cpu --query-device cpu --collect-only \
  --text bench/device/payload/head-text.txt --cache bench/device/payload/head-queries.bin
# the GPU adaptive head's basis and the factors calibrated in it, on the tuning region of the same text (bench head
# times the adaptive rows on the test region's queries)
"$build/src/winnow" calibrate-head -m "$model" --text bench/device/payload/head-text.txt --fit-head-basis \
  --head-basis bench/device/payload/head-basis.gguf --basis-windows 600 --out bench/device/payload/head.json >/dev/null
# sparse.sh's text: the evaluation half of bench/sparse/run.sh's texts (the calibration never saw it)
rm -rf bench/device/extra && mkdir -p bench/device/extra
doc=/usr/share/vim/vim90/doc
if [ -f $doc/usr_01.txt ]; then cat $doc/usr_0[1-9].txt $doc/usr_1*.txt > bench/device/extra/sparse-eval.txt
else echo "prepare: $doc missing (apt-get install vim-runtime): sparse.sh will skip its end-to-end run" >&2; fi
# The llama.cpp peer (#11 item 5): llama-cpp-python with llama.cpp's CUDA backend for sm_90 (31 MB, from the workplace's
# shared folder, checked against its SHA256SUMS), the one dependency the GPU machine lacks (diskcache), and gguf-py
# (pure Python, copied from the venv) for llama_cpp_peer.py's conversion of the random bf16 models. Without the shared
# folder run.sh skips the peer and says so.
peers="$root/../shared/peers"
if [ -f "$peers/llama-cpp-python-0.3.16-cuda-sm90.tar.xz" ]; then
  (cd "$peers" && sha256sum --check --status SHA256SUMS) || { echo "prepare: $peers fails its SHA256SUMS" >&2; exit 1; }
  mkdir -p bench/device/extra/peer/gguf-py
  cp "$peers"/llama-cpp-python-0.3.16-cuda-sm90.tar.xz "$peers"/diskcache-5.6.3-py3-none-any.whl bench/device/extra/peer/
  gguf_dir=$(.venv/bin/python -c 'import gguf, os; print(os.path.dirname(gguf.__file__))')
  cp -r "$gguf_dir" bench/device/extra/peer/gguf-py/ && rm -rf bench/device/extra/peer/gguf-py/gguf/__pycache__
else echo "prepare: $peers/llama-cpp-python-0.3.16-cuda-sm90.tar.xz missing: run.sh will skip the llama.cpp peer" >&2; fi
# The model, gzipped (-6%), in parts that fit the calls: each call carries the working tree (tracked and
# untracked-not-ignored files) plus its carried folders, 64 MiB in all. Call 1 carries the payload and model-a, call 2
# model-b and extra, call 3 (only when the first two cannot hold the rest) model-c; run.sh joins model-*/part in order,
# unzips and checks the checksum.
limit=$((64 * 1024 * 1024 - 3 * 1024 * 1024)) # a call's 64 MiB, less 3 MiB of slack for files written before the calls (logs, notes)
tree=$( (git ls-files -z -- ':!bench/device/model-*'; git ls-files -z --others --exclude-standard) | xargs -0 stat -c %s 2>/dev/null |
  awk '{s += $1} END {print s + 0}' || true)
payload=$(du -sb bench/device/payload | cut -f1)
extra=$(du -sb bench/device/extra | cut -f1)
zipped=$(mktemp)
trap 'rm -f "$zipped"' EXIT
gzip -1 -c "$model" > "$zipped"
size=$(stat -c %s "$zipped")
room1=$((limit - tree - payload)) room2=$((limit - tree - extra)) room3=$((limit - tree))
[ $room1 -gt 0 ] && [ $room2 -gt 0 ] || { echo "prepare: the working tree ($tree bytes) and payload leave no room for the model in a call" >&2; exit 1; }
rm -rf bench/device/model-a bench/device/model-b bench/device/model-c
mkdir -p bench/device/model-a bench/device/model-b
a=$((size < room1 ? size : room1))
rest=$((size - a))
b=$((rest < room2 ? rest : room2))
part() { dd if="$zipped" of="$1" iflag=skip_bytes,count_bytes skip="$2" count="$3" bs=1M status=none; } # bytes [skip, skip + count)
part bench/device/model-a/part 0 $a
part bench/device/model-b/part $a $b
if [ $((a + b)) -lt $size ]; then
  [ $((size - a - b)) -le $room3 ] || { echo "prepare: the model does not fit three calls" >&2; exit 1; }
  mkdir -p bench/device/model-c && part bench/device/model-c/part $((a + b)) $((size - a - b))
fi
cmp -s <(cat bench/device/model-?/part | gzip -dc) "$model" || { echo "prepare: the model's parts do not join back into it" >&2; exit 1; }
echo "per call (64 MiB each, the working tree's $((tree / 1024)) KiB included; name kind nvidia-h200 in call 1, since a call"
echo "that names none may start an H100 and the targets are H200 numbers; if the H200 is refused, run on what is offered"
echo "and name the device in the reports):"
echo "  1: carry [\"bench/device/payload\", \"bench/device/model-a\"]: $(( (tree + payload + a) / 1024 )) KiB, command: bash bench/device/smoke.sh (~10 s)"
if [ -d bench/device/model-c ]; then
  echo "  2: carry [\"bench/device/model-b\", \"bench/device/extra\"]: $(( (tree + b + extra) / 1024 )) KiB, command true"
  echo "  3: carry [\"bench/device/model-c\"]: $(( (tree + size - a - b) / 1024 )) KiB, command: bash bench/device/run.sh"
else
  echo "  2: carry [\"bench/device/model-b\", \"bench/device/extra\"]: $(( (tree + b + extra) / 1024 )) KiB, command: bash bench/device/run.sh"
fi
