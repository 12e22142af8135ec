#!/usr/bin/env bash
# CPU speed of winnow on GGUF files of llama.cpp's common presets, next to llama.cpp on the same files: SmolLM2-135M
# (the Q4_1 file scripts/fetch-model.sh fetches) quantized again by llama.cpp's own quantizer to each preset
# (tests/fixtures/llama_quantize.py --allow-requantize), then bench/cpu_decode_vs_llamacpp.py on each file (pp512 and
# tg128, median of interleaved rounds, F16 KV caches). SmolLM2's rows are 576 wide, not a multiple of 256, so
# llama.cpp stores most of its matrices in its fallback types (Q5_0 / Q8_0) and only ffn_down (1536 wide) as K-quants,
# as it does in the published SmolLM2 Q4_K_M files. Run it alone: two OpenMP processes on 2 cores ruin each other's
# numbers.
# Usage: bench/gguf_presets.sh WINNOW_BINARY [PRESETS] [THREADS] [REPS] [LLAMA]   (LLAMA: native (default) or pinned)
#   e.g. bench/gguf_presets.sh build/src/winnow q4_k_m,q6_k 2 3 native
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
winnow=$1 presets=${2:-q4_k_m,q5_k_m,q6_k} threads=${3:-$(nproc)} reps=${4:-3} llama=${5:-native}
src="${WINNOW_DEFAULT_MODEL:-$HOME/.cache/winnow/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
[ -f "$src" ] || { echo "gguf_presets: $src not found (scripts/fetch-model.sh fetches it)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
IFS=, read -ra ps <<<"$presets"
for p in "${ps[@]}"; do
  "$root/.venv/bin/python" "$root/tests/fixtures/llama_quantize.py" "$src" "$out/smollm2-$p.gguf" "$p" --allow-requantize
  "$root/.venv/bin/python" "$root/bench/cpu_decode_vs_llamacpp.py" --model "$out/smollm2-$p.gguf" --winnow "$winnow" --threads "$threads" \
    --depths 0 -p 512 -n 128 --reps "$reps" --llama "$llama" --kv-type f16 2>"$out/stderr" | grep -E '^\||^model' || { cat "$out/stderr" >&2; exit 1; }
done
