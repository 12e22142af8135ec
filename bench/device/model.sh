# Sourced by run.sh and sparse.sh: join_model PATH joins prepare.sh's gzipped parts of SmolLM2 (bench/device/model-?/part,
# carried in the calls) into PATH and checks it against the payload's checksum. No parts: nothing done, status 0. A
# mismatch: PATH removed, one line saying so, status 1.
join_model() {
  local parts=bench/device out=$1
  { [ -f $parts/model-a/part ] && [ -f $parts/model-b/part ]; } || return 0
  cat $parts/model-?/part | { gzip -dc 2>/dev/null || python3 -c "import gzip, shutil, sys; shutil.copyfileobj(gzip.open(sys.stdin.buffer), sys.stdout.buffer)"; } > "$out"
  echo "$(cat $parts/payload/model.sha256)  $out" | sha256sum --check --status && return 0
  rm -f "$out"
  echo "SmolLM2 parts (model-?/part) do not match the checksum"
  return 1
}
