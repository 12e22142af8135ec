#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang++ with ASan + UBSan, winnow_core instrumented) in build-fuzz and
# runs each for SECONDS (default 30) on a scratch copy of its seed corpus tests/fuzz/corpus/<target>/ (the committed
# corpus never grows). Prints each target's executions and final coverage; exits non-zero on any crash, leak, timeout,
# out-of-memory or sanitizer report (the reproducer is left in build-fuzz/artifacts/).
#   scripts/fuzz.sh [SECONDS_PER_TARGET]
#   FUZZ_TARGETS="fuzz_gguf fuzz_safetensors" scripts/fuzz.sh 60     # a subset
#   FUZZ_BUILD_DIR (default build-fuzz), FUZZ_BUILD_JOBS (default: the core count), FUZZ_NO_BUILD=1 (use the built
#   targets as they are), FUZZ_WORK_DIR (keep the grown corpora there across runs instead of a throw-away directory),
#   FUZZ_JOBS (targets fuzzed at once, default: the core count)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds="${1:-30}"
# clang++ with libFuzzer and clang's OpenMP are not among scripts/setup.sh's packages: install them the same way
if ! command -v clang++ >/dev/null || ! compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a" >/dev/null ||
   ! dpkg-query -W -f='${Status}' libomp-dev 2>/dev/null | grep -q "install ok installed"; then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq clang libclang-rt-dev libomp-dev
fi
build="${FUZZ_BUILD_DIR:-build-fuzz}"
jobs="${FUZZ_BUILD_JOBS:-$(nproc)}"
san="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -g -O1"
if [[ "${FUZZ_NO_BUILD:-0}" != 1 ]]; then
cmake -S . -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Fuzz "-DCMAKE_CXX_FLAGS=$san" \
  -DWINNOW_FUZZ=ON -DWINNOW_CUDA=OFF -DWINNOW_BUILD_TESTS=OFF -DWINNOW_BUILD_BENCH=OFF -DWINNOW_INSTALL=OFF >/dev/null
nice -n 19 cmake --build "$build" --target fuzz_all -j "$jobs"
fi

# the longest input each target is given (the seeds fit; a GGUF or a safetensors model needs room for tensor data)
declare -A max_len=(
  [fuzz_gguf]=131072 [fuzz_checkpoint]=131072 [fuzz_safetensors]=65536 [fuzz_safetensors_index]=131072
  [fuzz_hf_config]=4096 [fuzz_tokenizer_json]=65536 [fuzz_tokenizer_encode]=4096 [fuzz_chat_template]=16384
  [fuzz_head_calibration]=4096 [fuzz_sparse_pattern]=16384 [fuzz_head_basis]=16384)
targets="${FUZZ_TARGETS:-$(cd tests/fuzz/corpus && ls)}"
artifacts=$(cd "$build" && pwd)/artifacts
mkdir -p "$artifacts"
# the harnesses' temporary files go to memory when it can (they write every input to a file)
tmp_root=/tmp
[[ -d /dev/shm && -w /dev/shm ]] && tmp_root=/dev/shm
scratch=$(mktemp -d "$tmp_root/winnow-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
work="${FUZZ_WORK_DIR:-$scratch}"
# One target's run: its row of the table goes to $scratch/$t/row, and $scratch/$t/failed marks a failure.
run_target() {
  local t=$1 log="$scratch/$1/log" rc=0
  mkdir -p "$work/$t/corpus" "$scratch/$t/tmp"
  cp -n tests/fuzz/corpus/$t/* "$work/$t/corpus/"
  TMPDIR="$scratch/$t/tmp" nice -n 19 "$build/tests/fuzz/$t" -max_total_time="$seconds" -max_len="${max_len[$t]}" \
    -timeout=20 -rss_limit_mb=2560 -print_final_stats=1 -artifact_prefix="$artifacts/$t-" "$work/$t/corpus" >"$log" 2>&1 || rc=$?
  local execs last cov ft corp result=ok
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
  if [[ $rc -ne 0 ]] || grep -qE 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: ' "$log"; then
    result="FAILED (rc $rc)"
    touch "$scratch/$t/failed"
    cp "$log" "$artifacts/$t.log"
  fi
  echo "${execs:-0}" >"$scratch/$t/execs"
  printf '%-24s %12s %8s %8s %8s  %s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result" >"$scratch/$t/row"
}
for t in $targets; do
  [[ -n "${max_len[$t]:-}" ]] || { echo "fuzz.sh: no max_len for target '$t'" >&2; exit 2; }
done
# Each libFuzzer process is one thread, so FUZZ_JOBS of them (default: the core count) run side by side, each for its
# full SECONDS: on the 2-core CI machine the 11 targets of 30 s take 3 minutes instead of 5.5, with the same fuzzing
# time each.
fuzz_jobs="${FUZZ_JOBS:-$(nproc)}"
for t in $targets; do
  while [[ $(jobs -rp | wc -l) -ge $fuzz_jobs ]]; do wait -n || true; done
  run_target "$t" &
done
wait
failed=()
total=0
printf '%-24s %12s %8s %8s %8s  %s\n' target executions cov ft corpus result
for t in $targets; do
  cat "$scratch/$t/row"
  total=$((total + $(cat "$scratch/$t/execs")))
  [[ -e "$scratch/$t/failed" ]] && failed+=("$t")
done
echo "total executions: $total"
if [[ ${#failed[@]} -gt 0 ]]; then
  for t in "${failed[@]}"; do
    echo "---- $t (log: $artifacts/$t.log)"
    grep -E 'ERROR:|runtime error:|SUMMARY:|what\(\)|Test unit written|#[0-9]+ 0x.* in winnow' "$artifacts/$t.log" | head -20
  done
  echo "fuzz.sh: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
  exit 1
fi
