#!/usr/bin/env bash
# SPION block-sparse attention on the GPU (#13 item 4), on the GPU machine after bench/device/prepare.sh's payload came
# with an earlier call; about 3 minutes, so in a call of its own after run.sh: `bash bench/device/sparse.sh` (it unpacks
# the bundle if run.sh has not, and uses the SmolLM2 file run.sh joined at /tmp/smollm2-q4_1.gguf). Writes under $OUT:
#   sparse-ops.txt              the op harness's masked, selection and summarize_keys cases on cuda (also in run.sh's
#                               full harness; here on their own so that a short call still checks them)
#   sparse-sanitizer.txt        compute-sanitizer memcheck on those cases
#   bench-attention-cuda.json   bench attention --device cuda: the op (all 30 layers, one decoded row and a 64-row
#                               prefill) dense vs the coverage-0.90 pattern with 64 query-aware units of 8 keys, and the
#                               pattern alone, at 2K and 8K; the target: sparse decode >= 0.8 x 1 / density
#   bench-attention-cuda-e2e.json  the same end to end on the vim manual's chapters 1-19 (prefill, decode tok/s, ppl of
#                               one chunk), when prepare.sh packed that text (bench/device/extra, carried in call 2)
set -uo pipefail
export PATH=$PATH:/usr/local/cuda/bin
W=${W:-/tmp/w}
here=bench/device
. $here/results.sh
results_begin sparse # reports packed into $OUT/sparse-results.tar.gz after every step (results.sh)
sparse_summary=()
snote() { sparse_summary+=("$1"); echo "== $1"; results_pack "${sparse_summary[@]}"; }
[ -f $here/payload/bundle.tar.xz ] || [ -x "$W/bin/winnow" ] || { snote "sparse: no bundle (carry bench/device/payload: a machine that went back idle starts bare)"; exit 1; }
[ -x "$W/bin/winnow" ] || { rm -rf "$W" && python3 -m tarfile -e $here/payload/bundle.tar.xz "$W"; }
P=bench/reports/spion/pattern-coverage0.90-per-group-8k.json
run() { env LD_LIBRARY_PATH=$W/lib:/usr/local/cuda/lib64 "$@"; }
export WINNOW_FIXTURE_DIR=${WINNOW_FIXTURE_DIR:-$PWD/$here/payload/fixtures}
model=/tmp/smollm2-q4_1.gguf
# run.sh joins the model's parts; on a machine where it has not run (a fresh one after an idle release), join them here
. $here/model.sh
[ -f $model ] || join_model $model
m=(); [ -f $model ] && m=(-m $model)
filter='*cuda*masked*:*cuda*select*:*cuda*summarize_keys*:*cuda*attention*'

timeout 90 $(which env) LD_LIBRARY_PATH=$W/lib:/usr/local/cuda/lib64 $W/bin/winnow_ops_tests --gtest_filter="$filter" > "$OUT/sparse-ops.txt" 2>&1
snote "sparse op cases (cuda): rc $? — $(grep -E '^\[  (PASSED|FAILED)' "$OUT/sparse-ops.txt" | tr '\n' ' ')"
if command -v compute-sanitizer >/dev/null; then
  timeout 120 compute-sanitizer --tool memcheck --error-exitcode 9 $(which env) LD_LIBRARY_PATH=$W/lib:/usr/local/cuda/lib64 \
    $W/bin/winnow_ops_tests --gtest_filter='*cuda*select*:*cuda*summarize_keys*:*cuda*masked_b32_prefill_300*' > "$OUT/sparse-sanitizer.txt" 2>&1
  snote "sparse memcheck: rc $? — $(grep -E 'ERROR SUMMARY' "$OUT/sparse-sanitizer.txt" | tail -1)"
fi
if [ ${#m[@]} -eq 0 ]; then snote "sparse bench: skipped (no SmolLM2 model: carry model-a and model-b)"; exit 0; fi
for sel in 64 0; do
  timeout 120 $(which env) LD_LIBRARY_PATH=$W/lib:/usr/local/cuda/lib64 $W/bin/winnow bench attention "${m[@]}" --device cuda --sparse-pattern $P \
    --sparse-select $sel --ctx 2048,8192 --reps 21 --prefill 64 --json > "$OUT/bench-attention-cuda-select$sel.json" 2> "$OUT/bench-attention-cuda-select$sel.err"
  snote "bench attention cuda, select $sel: rc $?"
done
python3 - "$OUT" > "$OUT/sparse-table.txt" 2>&1 <<'EOF'
import json, sys, os
for sel in (64, 0):
    f = os.path.join(sys.argv[1], f"bench-attention-cuda-select{sel}.json")
    if not os.path.exists(f) or os.path.getsize(f) == 0: continue
    for r in json.load(open(f)):
        d = r["op_decode"]
        ideal = 1 / r["last_row_density"]
        print(f"select {sel:2d} ctx {r['ctx']:5d}: decode op dense {d['dense_ms']:.3f} ms sparse {d['sparse_ms']:.3f} ms = {d['speedup']:.2f}x; "
              f"ideal 1/density {ideal:.2f}x -> {d['speedup'] / ideal:.2f} of ideal (target >= 0.8); prefill64 {r['op_prefill64']['speedup']:.2f}x")
EOF
cat "$OUT/sparse-table.txt"
results_pack "${sparse_summary[@]}"
text=$here/extra/sparse-eval.txt
if [ -f $text ]; then
  timeout 150 $(which env) LD_LIBRARY_PATH=$W/lib:/usr/local/cuda/lib64 $W/bin/winnow bench attention "${m[@]}" --device cuda --sparse-pattern $P \
    --ctx 8192 --reps 5 --prefill 64 --decode 32 --text $text --json > "$OUT/bench-attention-cuda-e2e.json" 2> "$OUT/bench-attention-cuda-e2e.err"
  snote "bench attention cuda end to end (8K): rc $? — $(python3 -c "
import json; r=json.load(open('$OUT/bench-attention-cuda-e2e.json'))[0]
print('decode %.1f -> %.1f tok/s, prefill %.0f -> %.0f tok/s, ppl %.3f -> %.3f' % (r['decode_tps']['dense'], r['decode_tps']['sparse'], r['prefill_tps']['dense'], r['prefill_tps']['sparse'], r['ppl']['dense'], r['ppl']['sparse']))" 2>&1)"
fi
results_pack "${sparse_summary[@]}"
