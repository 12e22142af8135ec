#!/usr/bin/env bash
# Issue #15's exact-head baselines on the GPU machine (one H200), from the repository root; about 2 minutes. Called by
# bench/device/run.sh after it has unpacked the bundle into $W and joined the SmolLM2 halves (standalone, it unpacks
# the bundle itself and looks for the model at $WINNOW_DEFAULT_MODEL or /tmp/smollm2-q4_1.gguf). Writes to $OUT:
#   ops-head-cuda.txt     the op harness's head_top_k cases on CUDA: vs the double reference and exactly vs the same
#                         backend's linear + top_k (ids, logit bits), and the algorithm's host run (HeadTopKLogic)
#   gpu-head.txt          tests/gpu/test_cuda_head.cpp: 60 random shapes x types x k vs linear + top_k, bad arguments,
#                         the adaptive head's warm-up and masked-step kernels and one elimination round vs their
#                         host twins (bit for bit), the whole GPU adaptive head (tests/gpu/test_cuda_adaptive_head.cpp:
#                         its new kernels vs their twins, warm-up and first round vs the host twin, top vs the CPU path
#                         and the exact argmax), and the time per call of fused vs linear + top_k and per adaptive
#                         query on SmolLM2's head shape (printed)
#   generate-cuda-head-{exact,adaptive,adaptive-pca}.txt   64 greedy tokens of generate --device cuda with each head
#                         (the last in prepare.sh's PCA basis, calibrated), --stats
#   sanitizer-head.txt    compute-sanitizer memcheck on a subset of the head_top_k cases (every tile/merge path)
#   bench-head-cuda.json  winnow bench head --device cuda: fused / cuBLAS GEMV + top_k / linear + top_k, us per query
#                         (median of 1000 calls), SmolLM2's real head (stored Q8_0, bf16, f32) and the SYNTHETIC
#                         131072 x 4096 head (q8_0, bf16, f32), k = 1 and 40, and the adaptive head (persistent and
#                         host-driven loops) on the real head and on the synthetic one (Q8_0 rows) at delta 0.01 /
#                         0.05 / 0.1 (MODEL.head.json's factors if present, else the theory constants) with gain and
#                         success, and the real head's adaptive rows again in prepare.sh's PCA basis with the factors
#                         calibrated in it ("+pca"): #15's targets (.txt: the same as a table;
#                         .err: progress and errors)
# Prints one summary line per step last.
set -uo pipefail
export PATH=$PATH:/usr/local/cuda/bin # compute-sanitizer, where a bare machine's PATH lacks the toolkit
here=bench/device
. $here/results.sh
results_begin head # standalone: reports packed into $OUT/head-results.tar.gz after every step; from run.sh: its folder
W=${W:-/tmp/w}
[ -x "$W/bin/winnow" ] || { rm -rf "$W" && python3 -m tarfile -e $here/payload/bundle.tar.xz "$W"; }
export WINNOW_FIXTURE_DIR=${WINNOW_FIXTURE_DIR:-$PWD/$here/payload/fixtures}
libs="$W/lib:/usr/local/cuda/lib64"
model=${WINNOW_DEFAULT_MODEL:-/tmp/smollm2-q4_1.gguf}
# the query windows' text: the packed copy (prepare.sh), else the system's GPL-3, else a text the checkout carries
text=$here/payload/head-text.txt
[ -f "$text" ] || text=/usr/share/common-licenses/GPL-3
[ -f "$text" ] || text=docs/architecture.md
head_summary=()
hnote() { head_summary+=("$1"); echo "== $1"; results_pack "${head_summary[@]}"; }
t0=$SECONDS

# From run.sh these two ran already (its op harness takes every *cuda* case, its GPU tests every test): straight to the
# benchmark there. Standalone, they run here.
if [ -z "${WINNOW_RESULTS_NESTED:-}" ]; then
  timeout -k 10 45 env LD_LIBRARY_PATH=$libs $W/bin/winnow_ops_tests --gtest_filter='*cuda__head_top_k*:HeadTopKLogic.*' > "$OUT/ops-head-cuda.txt" 2>&1
  hnote "head op harness (cuda): rc $? — $(grep -E '^\[  (PASSED|FAILED)' "$OUT/ops-head-cuda.txt" | tr '\n' ' ') ($((SECONDS - t0)) s)"

  timeout -k 10 90 env LD_LIBRARY_PATH=$libs $W/bin/winnow_gpu_tests --gtest_filter='CudaHead.*:CudaAdaptiveWarmUp.*:CudaAdaptiveRounds.*:CudaAdaptiveHeadKernels.*:CudaAdaptiveHead.*:CudaAdaptiveGenerate.*' > "$OUT/gpu-head.txt" 2>&1
  hnote "gpu head tests: rc $? — $(grep -E '^\[  (PASSED|FAILED)' "$OUT/gpu-head.txt" | tr '\n' ' ') ($((SECONDS - t0)) s)"
fi

if [ -f "$model" ]; then
  # hidden states: the CPU-computed ones prepare.sh packed (bench head --collect-only), else computed by the CUDA
  # forward here (seconds); if that path fails, 100 states computed on this machine's CPU instead
  queries=(--query-device cuda)
  [ -f $here/payload/head-queries.bin ] && queries=(--query-device cpu --cache $here/payload/head-queries.bin)
  # the adaptive rows in a PCA basis too, with the factors prepare.sh calibrated in it (the plain rows find no entry
  # for themselves there: theory constants, as in the run of 2026-12-04)
  basis=()
  [ -f $here/payload/head-basis.gguf ] && [ -f $here/payload/head.json ] &&
    basis=(--head-basis $here/payload/head-basis.gguf --head-calibration $here/payload/head.json)
  timeout 150 env LD_LIBRARY_PATH=$libs $W/bin/winnow bench head -m "$model" --device cuda --text "$text" "${queries[@]}" "${basis[@]}" --json \
    > "$OUT/bench-head-cuda.json" 2> "$OUT/bench-head-cuda.err"
  rc=$?
  if [ $rc -ne 0 ] && [ $((SECONDS - t0)) -lt 220 ]; then
    hnote "bench head --device cuda: rc $rc; retrying with 100 states computed on the CPU"
    timeout 60 env LD_LIBRARY_PATH=$libs $W/bin/winnow bench head -m "$model" --device cuda --text "$text" --query-device cpu \
      --queries 100 --tune 20 --json > "$OUT/bench-head-cuda.json" 2>> "$OUT/bench-head-cuda.err"
    rc=$?
  fi
  hnote "bench head --device cuda: rc $rc ($((SECONDS - t0)) s)"
  [ $rc -eq 0 ] && python3 - "$OUT/bench-head-cuda.json" > "$OUT/bench-head-cuda.txt" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{r['device']}: copy bandwidth {r['copy_bandwidth_gbps']:.0f} GB/s; {r['queries']} queries; timing: {r['timing']}")
if 'synthetic' in r: print(r['synthetic']['label'], '- original rows\' max |logit change|', r['synthetic']['original_rows_max_abs_logit_change'])
print('| head | format | method | k | median us | p10 | p90 | head GB/s | top-1 = fused | top-k = fused |')
for x in r['rows']:
    print(f"| {x['head']} | {x['format']} | {x['method']} | {x['k']} | {x['us_median']:.1f} | {x['us_p10']:.1f} | {x['us_p90']:.1f} | {x['head_gbps']:.0f} | {x['top1_agree_with_fused']:.3f} | {x['topk_ids_equal_fused']:.3f} |")
for x in r['rows']:
    if 'gain' in x: print(f"{x['method']} {x['format']} delta {x['delta']}: median {x['us_median']:.1f} us, gain {x['gain']:.2f}x, success {100 * x['success']:.1f}%")
PY
  # in generation (#15 item 4): 64 greedy tokens with the exact head and with the GPU adaptive head, --stats giving the
  # head's ms per step (the theory constants unless MODEL.head.json is there: the pipeline and its time, not the gain)
  for h in exact adaptive adaptive-pca; do
    extra=()
    [ $h = adaptive-pca ] && { [ ${#basis[@]} -gt 0 ] || continue; extra=("${basis[@]}"); }
    timeout 40 env LD_LIBRARY_PATH=$libs $W/bin/winnow generate -m "$model" --device cuda --head ${h%-pca} "${extra[@]}" --temp 0 -n 64 --ignore-eos \
      -p "The three primary colors are" --stats > "$OUT/generate-cuda-head-$h.txt" 2>&1
    hnote "generate --device cuda --head $h: rc $? — $(grep -E '^(prompt|head):' "$OUT/generate-cuda-head-$h.txt" | tr '\n' ' ') ($((SECONDS - t0)) s)"
  done
else
  hnote "bench head --device cuda: no model at $model"
fi

# sanitizers last: the bench above is the step that gives numbers, so it must not be the one a timeout cuts
if command -v compute-sanitizer >/dev/null; then
  # small vocabularies (every path: one tile, many tiles, k above the tile, k = the vocabulary), one large one and the
  # over-2048-tile merge (vocab 300000)
  timeout 60 compute-sanitizer --tool memcheck --error-exitcode 9 $(which env) LD_LIBRARY_PATH=$libs $W/bin/winnow_ops_tests \
    --gtest_filter='*cuda__head_top_k_*vocab1000_*:*cuda__head_top_k_*vocab129_*:*cuda__head_top_k_*vocab1_*:*cuda__head_top_k_BF16_vocab49152*:*cuda__head_top_k_F32_vocab300000*' \
    > "$OUT/sanitizer-head.txt" 2>&1
  hnote "compute-sanitizer memcheck, head_top_k: rc $? — $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer-head.txt" | tail -1) ($((SECONDS - t0)) s)"
  # the tile sort and the merge are shared-memory networks full of barriers: race and barrier checks on a small case
  for tool in racecheck synccheck; do
    timeout 30 compute-sanitizer --tool $tool --error-exitcode 9 $(which env) LD_LIBRARY_PATH=$libs $W/bin/winnow_ops_tests \
      --gtest_filter='*cuda__head_top_k_F32_vocab1000_*' > "$OUT/sanitizer-head-$tool.txt" 2>&1
    hnote "compute-sanitizer $tool, head_top_k: rc $? — $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer-head-$tool.txt" | tail -1) ($((SECONDS - t0)) s)"
  done
else
  hnote "compute-sanitizer: not on the PATH"
fi

echo
echo "==================== head (#15) summary, $((SECONDS - t0)) s"
printf '%s\n' "${head_summary[@]}"
[ -s "$OUT/bench-head-cuda.txt" ] && cat "$OUT/bench-head-cuda.txt"
results_pack "${head_summary[@]}"
exit 0
