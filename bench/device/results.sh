# Sourced by run.sh, head.sh and sparse.sh: where their reports go. The device tool brings back at most 8 files from
# $OUT (and none more than 2 folders down), while a run writes dozens of reports. So each script writes into a staging
# folder of its own and packs it into one $OUT/<name>-results.tar.gz after every step, with its summary lines in
# $OUT/<name>-summary.txt: what ran comes back even when a later step is killed at the call's time limit. A script
# called by another (head.sh from run.sh) writes into the caller's staging folder, which the caller packs.
#   results_begin NAME    sets OUT to the staging folder (RESULTS_FINAL: the tool's $OUT)
#   results_pack LINES... writes the summary lines and the tarball (atomically: a killed pack leaves the last one)
results_begin() {
  if [ -n "${WINNOW_RESULTS_NESTED:-}" ]; then # a caller packs: write into its folder
    RESULTS_NAME=""
    mkdir -p "$OUT"
    return
  fi
  RESULTS_NAME=$1
  RESULTS_FINAL=${OUT:-/tmp/winnow-out}
  mkdir -p "$RESULTS_FINAL"
  OUT=/tmp/winnow-results/$1
  rm -rf "$OUT" && mkdir -p "$OUT"
  export OUT
}
results_pack() {
  [ -n "$RESULTS_NAME" ] || return 0
  printf '%s\n' "$@" > "$RESULTS_FINAL/.$RESULTS_NAME-summary.tmp" && mv -f "$RESULTS_FINAL/.$RESULTS_NAME-summary.tmp" "$RESULTS_FINAL/$RESULTS_NAME-summary.txt"
  tar -czf "$RESULTS_FINAL/.$RESULTS_NAME.tmp" -C "$OUT" . 2>/dev/null &&
    mv -f "$RESULTS_FINAL/.$RESULTS_NAME.tmp" "$RESULTS_FINAL/$RESULTS_NAME-results.tar.gz"
}
