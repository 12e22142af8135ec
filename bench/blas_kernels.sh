#!/usr/bin/env bash
# fp32 prefill (OpenBLAS sgemm on decoded weight blocks) with each OpenBLAS kernel set this CPU runs, in one run:
# OpenBLAS's own choice when it does not know the CPU (Prescott: SSE3), and the AVX2 (Haswell) and AVX-512 (SkylakeX)
# kernels that winnow's prepare_blas picks instead (src/backend/cpu/blas.cpp). OPENBLAS_CORETYPE forces each, and
# prepare_blas leaves a set OPENBLAS_CORETYPE alone. Run it alone: two OpenMP processes on 2 cores ruin each other's
# numbers. Usage: bench/blas_kernels.sh WINNOW_BINARY MODEL [THREADS] [REPS]
set -euo pipefail
winnow=$1 model=$2 threads=${3:-$(nproc)} reps=${4:-5}
cores=(Prescott)
grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && cores+=(Haswell)
grep -qw avx512f /proc/cpuinfo && grep -qw avx512bw /proc/cpuinfo && grep -qw avx512vl /proc/cpuinfo && cores+=(SkylakeX)
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); threads $threads; $reps reps; $(date -u +%F)"
echo "what winnow runs here, untold: $(env -u OPENBLAS_CORETYPE "$winnow" bench decode -m "$model" -p 8 -n 1 -r 1 -t "$threads" | sed -n 's/^prefill products: //p')"
echo
echo "| OpenBLAS kernels | test | tokens/s (mean ± sd of $reps) |"
echo "| --- | --- | ---: |"
for p in 31 512; do
  for core in "${cores[@]}"; do
    line=$(OPENBLAS_CORETYPE=$core "$winnow" bench decode -m "$model" -p "$p" -n 1 -r "$reps" -t "$threads" --json |
      python3 -c 'import json,sys; r=[x for x in json.load(sys.stdin) if x["test"].startswith("pp")][0]; print("%s | %.1f ± %.1f" % (r["test"], r["tokens_per_s"], r["tokens_per_s_sd"]))')
    echo "| $core | $line |"
  done
done
