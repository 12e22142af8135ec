#!/usr/bin/env bash
# Prefill with the CPU's attention in tiles of rows (src/backend/cpu/attention_tiles_cpu.h) against the row walk it
# replaced (WINNOW_CPU_ATTENTION_TILES=0), interleaved round by round in one run: pp512 at each depth (tokens already in
# the context, llama-bench's -d), f32 dot mode, the KV cache type given. Run it alone: two OpenMP processes on 2 cores
# ruin each other's numbers.
# Usage: bench/attention_tiles.sh WINNOW_BINARY MODEL [THREADS] [ROUNDS] [DEPTHS] [KV_TYPE]
#   e.g. bench/attention_tiles.sh build/src/winnow ~/.cache/winnow/models/SmolLM2-135M-Instruct.Q4_1.gguf 2 3 0,2048,4096 f16
set -euo pipefail
winnow=$1 model=$2 threads=${3:-$(nproc)} rounds=${4:-3} depths=${5:-0,2048} kv=${6:-f32}
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); threads $threads; $rounds rounds of pp512 (3 runs each); kv $kv; $(date -u +%F)"
pp() { # tokens/s of one bench decode (pp512 at depth $1, mean of 3 runs after its warm-up)
  local depth=$1
  shift
  "$@" bench decode -m "$model" -p 512 -n 0 -r 3 -d "$depth" -t "$threads" --dot f32 --kv-type "$kv" --json |
    python3 -c 'import json,sys; r=[x for x in json.load(sys.stdin) if x["test"].startswith("pp")][0]; print("%.1f" % r["tokens_per_s"])'
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
declare -A results
IFS=, read -ra ds <<<"$depths"
for ((r = 0; r < rounds; ++r)); do
  for d in "${ds[@]}"; do
    for t in 0 1; do results[$d,$t]+="$(pp "$d" env WINNOW_CPU_ATTENTION_TILES=$t "$winnow") "; done
  done
done
echo
echo "| depth | row walk, each round | tiles, each round | row walk median | tiles median | tiles / row walk |"
echo "| ---: | --- | --- | ---: | ---: | ---: |"
for d in "${ds[@]}"; do
  a=$(echo "${results[$d,0]}" | median) b=$(echo "${results[$d,1]}" | median)
  echo "| $d | ${results[$d,0]}| ${results[$d,1]}| $a | $b | $(python3 -c "print('%.2fx' % ($b / $a))") |"
done
