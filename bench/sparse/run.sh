#!/usr/bin/env bash
# The SPION report's numbers (bench/reports/spion-attention-cpu.md), on this machine, alone (no other benchmark or
# build running: two OpenMP processes on 2 cores ruin each other's numbers).
#   bench/sparse/run.sh [OUT_DIR]      (default: bench/reports/spion)
# Texts: Debian's vim user manual, chapters 20-45 for calibration and chapters 1-19 for evaluation (different text,
# same kind), so every quality number is on text the calibration never saw. Needs vim-runtime's docs and the default
# model (models/fetch-default-model.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${WINNOW:-build/src/winnow}
OUT=${1:-bench/reports/spion}
DOC=/usr/share/vim/vim90/doc
COVERAGE=${COVERAGE:-0.95}
# query-aware blocks per sparse row (--sparse-select, 16-token units); 0: the calibrated pattern alone. Outputs of a run
# with selection carry "-select$SELECT" in their names, so both sets of numbers sit side by side.
SELECT=${SELECT:-64}
SUF=""
[ "$SELECT" != 0 ] && SUF="-select$SELECT"
SEL=(--sparse-select "$SELECT")
STEPS=" ${STEPS:-1 2 2b 3 4} " # a subset reruns part of the report
step() { [[ "$STEPS" == *" $1 "* ]]; }
mkdir -p "$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ -f "$DOC/usr_01.txt" ] || { echo "run.sh: $DOC/usr_*.txt missing (apt-get install vim-runtime)" >&2; exit 1; }
cat "$DOC"/usr_[234]*.txt > "$tmp/calib.txt"
cat "$DOC"/usr_0[1-9].txt "$DOC"/usr_1*.txt > "$tmp/eval.txt"

# 1. the pattern: coverage method, one pattern per KV head group (better than the head mean at equal coverage: the
#    report), at the model's trained context, 2 chunks of the calibration text (kept if present:
#    calibration is deterministic, and its timing is not part of the report)
P="$OUT/pattern-coverage$COVERAGE-per-group-8k.json"
step 1 && { [ -f "$P" ] || "$W" calibrate-sparse --text "$tmp/calib.txt" --ctx 8192 --chunks 2 --method coverage --coverage "$COVERAGE" --per-group \
    --out "$P" 2> "$OUT/calibrate.log"; }
# 2. the attention op and end to end (prefill, decode, one-chunk perplexity) per context length
step 2 && "$W" bench attention --sparse-pattern "$P" "${SEL[@]}" --text "$tmp/eval.txt" --ctx 1024,2048,4096,8192 \
    --reps 5 --decode 32 --json > "$OUT/bench-attention$SUF.json"
# 2b. where sparse stops paying (the dense_below default): the op with every position sparse at short contexts, to
#     set against the whole decode step at those lengths (the end-to-end decode rates of step 2)
step 2b && "$W" bench attention --sparse-pattern "$P" "${SEL[@]}" --ctx 256,512,1024,2048 --sparse-dense-below 0 --reps 5 --json > "$OUT/bench-attention-short$SUF.json"
# 3. perplexity over more text at 8K, dense (kept if present: it does not depend on the pattern) and sparse
step 3 && for mode in dense sparse; do
    args=()
    out="$OUT/perplexity-8k-$mode$SUF.json"
    [ "$mode" = sparse ] && args=(--attention sparse --sparse-pattern "$P" "${SEL[@]}")
    [ "$mode" = dense ] && { out="$OUT/perplexity-8k-dense.json"; [ -f "$out" ] && continue; }
    "$W" perplexity --text "$tmp/eval.txt" --ctx 8192 --chunks 2 --json "${args[@]}" > "$out"
done
# 4. passkey retrieval, dense vs sparse
step 4 && python3 bench/sparse/passkey.py --winnow "$W" --pattern "$P" --select "$SELECT" --lengths 2048,4096,8192 \
    --trials 1 --out "$OUT/passkey$SUF.json" | tee "$OUT/passkey$SUF.md"
true
