#!/usr/bin/env bash
# The whole test suite under AddressSanitizer (with LeakSanitizer) + UndefinedBehaviorSanitizer (issue 16 item 4).
# Builds winnow, its tests and the CLI with gcc's -fsanitize=address,undefined in its own build directory (build-asan:
# CPU only, -O1 -g1 (SANITIZE_OPT_FLAGS), -march=native like scripts/test.sh so the same AVX2/AVX-512 kernels run,
# libstdc++ assertions on)
# and runs the ctest entries scripts/test.sh runs: labels unit (unit., ops., api., cli., hostile., perplexity.bad_input)
# and model (model., api., perplexity., the fixture.* oracles). Python-only fixture writers (gguf-py,
# llama-cpp-python) do not load winnow and run as usual; every winnow process they start is instrumented.
#
#   scripts/sanitize.sh [-j CTEST_JOBS] [-L LABEL] [-R REGEX] [-E REGEX] [--no-build] [--timeout SECONDS]
#     -j N          tests run in parallel (default 1, like scripts/test.sh: the tests use every core through OpenMP)
#     -L/-LE/-R     passed to ctest (select by label / exclude a label / select by name); -L unit is the fast part
#     -E REGEX      exclude by name, in addition to the exclusion below
#     --no-build    run the tests of build-asan as it is
#     --timeout S   ctest's per-test timeout for tests that set none (default 3600)
#   SANITIZE_BUILD_DIR (default build-asan), SANITIZE_BUILD_JOBS (default: the core count), SANITIZE_OPT_FLAGS (default
#   "-O1 -g1")
# Prints a summary; exits non-zero when a test failed or any sanitizer report was written.
#
# - ASan and LeakSanitizer reports go to files (log_path), one per process, so that a report from a child process
#   whose output a test swallows (a CLI run by a cmake -P script or by Python, a leak reported after a
#   PASS_REGULAR_EXPRESSION test printed its match) still fails the run. gcc's UBSan runtime (libubsan, separate from
#   libasan) ignores log_path when ASan is in the same process and writes to stderr: ctest keeps every test's whole
#   output and the script searches it for "runtime error:"; with halt_on_error the process also exits non-zero.
#   The summary prints each report's first lines.
# - ASAN_OPTIONS detect_leaks=1 (LeakSanitizer), halt_on_error=1 (SANITIZE_ASAN_OPTIONS=... appends more, e.g.
#   detect_stack_use_after_return=1); UBSan: -fno-sanitize-recover=undefined, halt_on_error=1, print_stacktrace=1.
#   No LeakSanitizer suppressions are needed (OpenMP's libgomp and OpenBLAS report nothing); a leak is a failure.
# - The Python module test (api.python_module) loads the instrumented libwinnow into CPython, which is not
#   instrumented: tests/api/python_module.sh preloads libasan for that pytest run only (with leak detection off for
#   the interpreter, whose own allocations alive at exit are not winnow's). The installed-consumer test builds
#   examples/hello with this build's -fsanitize flags (tests/api/consumer_app.cmake).
# - The long tests' TIMEOUT properties are multiplied by 8 in this build (WINNOW_TEST_TIMEOUT_SCALE,
#   tests/CMakeLists.txt): the adaptive-head model tests and the head-calibration fixture run several times slower.
# - OMP_WAIT_POLICY=passive (unless set): the tests run under nice 19 on a machine that may be busy, where OpenMP's
#   spinning barriers wait on descheduled threads and made some model tests 100x slower than their release time.
# - Left out, always: hostile.address_space_limit runs the CLI under RLIMIT_AS = 1 GiB (tests/hostile/limits.py), and
#   an ASan process reserves terabytes of shadow address space at start ("AddressSanitizer failed to allocate
#   0xdfff0001000 bytes"), so under ASan it can only fail; the normal suite runs it.
set -euo pipefail

# The whole script is one function, read by bash before it runs: editing this file during a run cannot change it.
main() {
  local root
  root=$(cd "$(dirname "$0")/.." && pwd)
  cd "$root"

  local jobs=1 timeout=3600 build_it=1 exclude='^hostile\.address_space_limit$'
  local ctest_args=()
  while [[ $# -gt 0 ]]; do
    case "$1" in
      -j) jobs="$2"; shift 2 ;;
      -j*) jobs="${1#-j}"; shift ;;
      -E) exclude="$exclude|$2"; shift 2 ;;
      -R|-L|-LE) ctest_args+=("$1" "$2"); shift 2 ;;
      --no-build) build_it=0; shift ;;
      --timeout) timeout="$2"; shift 2 ;;
      -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
      *) echo "sanitize.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
  done

  local build="${SANITIZE_BUILD_DIR:-build-asan}"
  local build_jobs="${SANITIZE_BUILD_JOBS:-$(nproc)}"
  local san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -D_GLIBCXX_ASSERTIONS"
  local link="-fsanitize=address,undefined"

  local start built end
  start=$(date +%s)
  if [[ $build_it == 1 ]]; then
    scripts/setup.sh
    scripts/fetch-model.sh >/dev/null
    # RelWithDebInfo without -DNDEBUG (winnow has no assert()). -O1 -g1, ASan's recommended optimisation and line
    # tables (the reports' stack traces keep their files and lines), compile in half the time of -O2 -g (a unity
    # batch of the library: 27 s instead of 56 s; the whole build was 10-17 minutes of CI's 90 with -O2 -g)
    local opt="${SANITIZE_OPT_FLAGS:--O1 -g1}"
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$opt" \
      -DCMAKE_C_FLAGS_RELWITHDEBINFO="$opt" "-DCMAKE_CXX_FLAGS=$san" "-DCMAKE_C_FLAGS=$san" \
      "-DCMAKE_EXE_LINKER_FLAGS=$link" "-DCMAKE_SHARED_LINKER_FLAGS=$link" "-DCMAKE_MODULE_LINKER_FLAGS=$link" \
      -DWINNOW_CUDA=OFF -DWINNOW_BUILD_TESTS=ON -DWINNOW_BUILD_BENCH=OFF -DWINNOW_TEST_TIMEOUT_SCALE=8 >/dev/null
    nice -n 19 cmake --build "$build" -j "$build_jobs"
  fi
  built=$(date +%s)

  local logs
  logs="$(cd "$build" && pwd)/sanitizer-logs"
  rm -rf "$logs" && mkdir -p "$logs"
  # halt_on_error: the first report ends the process with a non-zero status; log_exe_name: the file names the program
  export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:check_initialization_order=1:strict_init_order=1:detect_odr_violation=2:log_path=$logs/asan:log_exe_name=1${SANITIZE_ASAN_OPTIONS:+:$SANITIZE_ASAN_OPTIONS}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"

  local rc=0 ctest_log="$build/sanitize-ctest.log"
  WINNOW_REQUIRE_MODELS="${WINNOW_REQUIRE_MODELS:-1}" nice -n 19 ctest --test-dir "$build" --output-on-failure --no-tests=error \
    -j "$jobs" --timeout "$timeout" --test-output-size-passed 10000000 --test-output-size-failed 10000000 -E "$exclude" "${ctest_args[@]}" 2>&1 | tee "$ctest_log" || rc=$?
  end=$(date +%s)

  local reports=("$logs"/*)
  [[ -e "${reports[0]}" ]] || reports=()
  # UBSan reports (and any other sanitizer line) in the tests' own output, with the test that printed them
  local in_output
  in_output=$(awk '/^[0-9]+\/[0-9]+ Testing: / { name = $3 }
                   /runtime error:|Sanitizer|SUMMARY: / { print "  " name ": " $0 }' \
              "$build/Testing/Temporary/LastTest.log" 2>/dev/null | head -50 || true)
  echo
  echo "==== sanitize.sh summary ($build, excluded: $exclude)"
  echo "build: $((built - start)) s, tests: $((end - built)) s, ctest exit status: $rc"
  grep -E '^[0-9]+% tests passed|^Total Test time' "$ctest_log" || true
  echo "skipped (the op harness's unsupported backend x op x type cases, as in the normal suite): $(grep -cE '^ *[0-9]+/[0-9]+ Test +#.*\*\*\*Skipped ' "$ctest_log" || true)"
  if [[ $rc -ne 0 ]]; then
    echo "not passed:"
    grep -E '^ *[0-9]+/[0-9]+ Test +#' "$ctest_log" | grep -vE ' Passed +[0-9.]+ sec$|\*\*\*Skipped ' | sed -E 's/ \.{3,}/ /; s/^/  /' || true
  fi
  if [[ ${#reports[@]} -gt 0 ]]; then
    echo "sanitizer reports: ${#reports[@]} (in $logs)"
    local f
    for f in "${reports[@]}"; do
      echo "---- $f"
      grep -E 'Sanitizer|runtime error:|SUMMARY:|^ *#[0-9]+ 0x' "$f" | head -30
    done
    [[ $rc -ne 0 ]] || rc=1
  else
    echo "sanitizer report files (ASan, LSan): none"
  fi
  if [[ -n "$in_output" ]]; then
    echo "sanitizer lines in the tests' output (UBSan writes to stderr):"
    echo "$in_output"
    [[ $rc -ne 0 ]] || rc=1
  else
    echo "sanitizer lines in the tests' output (UBSan): none"
  fi
  if [[ $rc -eq 0 ]]; then echo "sanitize.sh: OK"; else echo "sanitize.sh: FAILED" >&2; fi
  exit "$rc"
}
main "$@"
