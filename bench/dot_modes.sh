#!/usr/bin/env bash
# The three CPU dot modes on one model, interleaved round by round in one run: f32 (exact activations), q8 (8-bit
# activations wherever a kernel has them, llama.cpp's numerics) and auto (the default: q8's decode products, f32's
# prefill products), pp512 and tg128 each (bench decode, 3 runs after its warm-up), then perplexity in each mode on
# one text (it does not change between rounds). Run it alone: two OpenMP processes on 2 cores ruin each other's numbers.
# Usage: bench/dot_modes.sh WINNOW_BINARY MODEL [THREADS] [ROUNDS] [TEXT]
set -euo pipefail
winnow=$1 model=$2 threads=${3:-$(nproc)} rounds=${4:-3} text=${5:-/usr/share/common-licenses/GPL-3}
modes=(f32 q8 auto)
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); $(grep -qw avx512f /proc/cpuinfo && echo AVX-512 || echo 'AVX2, no AVX-512');" \
  "threads $threads; $rounds rounds; $(basename "$model"); $(date -u +%F)"
run() { # "pp tg" tokens/s of one bench decode in mode $1
  "$winnow" bench decode -m "$model" -p 512 -n 128 -r 3 -t "$threads" --dot "$1" --json |
    python3 -c 'import json,sys; r={x["test"][:2]: x["tokens_per_s"] for x in json.load(sys.stdin)}; print("%.1f %.1f" % (r["pp"], r["tg"]))'
}
declare -A pp tg
for ((r = 0; r < rounds; ++r)); do
  for m in "${modes[@]}"; do
    read -r p t < <(run "$m")
    pp[$m]+="$p " tg[$m]+="$t "
  done
done
median() { echo "$1" | tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
echo
echo "| dot mode | pp512 t/s, each round | median | tg128 t/s, each round | median | perplexity (ctx 512) |"
echo "| --- | --- | ---: | --- | ---: | ---: |"
for m in "${modes[@]}"; do
  ppl=$("$winnow" perplexity -m "$model" --text "$text" --ctx 512 -t "$threads" --dot "$m" --json | python3 -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["ppl"])')
  echo "| $m | ${pp[$m]}| $(median "${pp[$m]}") | ${tg[$m]}| $(median "${tg[$m]}") | $ppl |"
done
