#!/usr/bin/env bash
# The f32 dot mode's decode (one quantized weight row at a time against fp32 activations, src/backend/cpu/vec_dot.h)
# with each kernel this CPU runs, interleaved round by round in one run: `baseline` (the build's AVX2 kernel) and
# `avx512` (chosen at run time where the CPU has AVX-512F); WINNOW_CPU_DOT_KERNEL forces each. An optional older
# winnow binary joins each round as "before" (its own default kernel). Run it alone: two OpenMP processes on 2 cores
# ruin each other's numbers. Usage: bench/dot_kernels.sh WINNOW_BINARY MODEL [THREADS] [ROUNDS] [BEFORE_BINARY]
set -euo pipefail
winnow=$1 model=$2 threads=${3:-$(nproc)} rounds=${4:-3} before=${5:-}
kernels=(baseline)
grep -qw avx512f /proc/cpuinfo && kernels+=(avx512)
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); threads $threads; $rounds rounds of tg128 (5 runs each); $(date -u +%F)"
tg() { # tokens/s of one bench decode (tg128, mean of 5 runs after its warm-up)
  "$@" bench decode -m "$model" -p 0 -n 128 -r 5 -t "$threads" --dot f32 --json |
    python3 -c 'import json,sys; r=[x for x in json.load(sys.stdin) if x["test"].startswith("tg")][0]; print("%.1f" % r["tokens_per_s"])'
}
declare -A results
names=()
[ -n "$before" ] && names+=(before)
names+=("${kernels[@]}")
for ((r = 0; r < rounds; ++r)); do
  [ -n "$before" ] && results[before]+="$(tg env -u WINNOW_CPU_DOT_KERNEL "$before") "
  for k in "${kernels[@]}"; do results[$k]+="$(tg env WINNOW_CPU_DOT_KERNEL=$k "$winnow") "; done
done
echo
echo "| kernel | tg128 tokens/s, each round | median |"
echo "| --- | --- | ---: |"
for n in "${names[@]}"; do
  echo "| $n | ${results[$n]}| $(echo "${results[$n]}" | tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}') |"
done
