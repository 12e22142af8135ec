#!/usr/bin/env bash
# CPU speed of winnow next to llama.cpp on random-weight files with the shapes and real vocabularies of Qwen2.5-0.5B
# (qwen2: q/k/v biases, 151,936-token tied head), Qwen3-0.6B (qwen3: q/k head norms, heads wider than the embedding's
# split) and Llama-3.2-1B (llama with Llama 3.1's rope scaling, 128,256-token
# tied head): bench/make_shaped_model.py writes each in F16, llama.cpp's own quantizer (tests/fixtures/llama_quantize.py)
# writes the preset, then bench/cpu_decode_vs_llamacpp.py (pp512 and tg128, median of interleaved rounds, F16 KV
# caches). Synthetic weights: speed depends only on the shapes; label the numbers synthetic. Needs
# scripts/fetch-vocab.sh's vocabularies. Run it alone: two OpenMP processes on 2 cores ruin each other's numbers.
# Usage: bench/shaped_models.sh WINNOW_BINARY [SHAPES] [PRESET] [THREADS] [REPS] [LLAMA]
#   e.g. bench/shaped_models.sh build/src/winnow qwen2.5-0.5b,llama3.2-1b q4_k_m 2 3 native
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
winnow=$1 shapes=${2:-qwen2.5-0.5b,llama3.2-1b} preset=${3:-q4_k_m} threads=${4:-$(nproc)} reps=${5:-3} llama=${6:-native}
vocab_dir=$("$root/scripts/fetch-vocab.sh")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
py="$root/.venv/bin/python"
IFS=, read -ra ss <<<"$shapes"
for s in "${ss[@]}"; do
  case "$s" in qwen* | gemma3*) vocab=qwen2 ;; llama3*) vocab=llama-bpe ;; *) echo "shaped_models: unknown shape $s" >&2; exit 1 ;; esac
  "$py" "$root/bench/make_shaped_model.py" "$s" "$vocab_dir/ggml-vocab-$vocab.gguf" "$out/$s-f16.gguf"
  "$py" "$root/tests/fixtures/llama_quantize.py" "$out/$s-f16.gguf" "$out/$s-$preset.gguf" "$preset"
  rm -f "$out/$s-f16.gguf"
  echo "model: synthetic $s ($preset by llama.cpp's quantizer)"
  "$py" "$root/bench/cpu_decode_vs_llamacpp.py" --model "$out/$s-$preset.gguf" --winnow "$winnow" --threads "$threads" \
    --depths 0 -p 512 -n 128 --reps "$reps" --llama "$llama" --kv-type f16 2>"$out/stderr" | grep -E '^\||^model' || { cat "$out/stderr" >&2; exit 1; }
done
