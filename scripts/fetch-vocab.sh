#!/usr/bin/env bash
# Fetches llama.cpp's tokenizer parity fixtures for the vocabularies too large to keep in the repository (Llama 3,
# Qwen2, Phi-3, MPT, StarCoder, Refact, Command-R, Falcon, DeepSeek: 1-11 MB each), and the published models' chat
# templates llama.cpp tests its own renderer on (models/templates/*.jinja: Qwen3, Llama 3.x, Mistral, DeepSeek-R1,
# Gemma 2, Phi-3.5, Granite, Command-R, gpt-oss, ...; into DIR/chat-templates), and prints the folder they are in.
#   scripts/fetch-vocab.sh [DIR]
# DIR defaults to $WINNOW_VOCAB, else ${XDG_CACHE_HOME:-~/.cache}/winnow/vocab/llama-cpp-python-0.3.16.
#
# They come from the PyPI source distribution of llama-cpp-python 0.3.16 (the peer engine's own pinned version; its
# vendor/llama.cpp/models/ holds, per vocabulary, a vocabulary-only GGUF file, test inputs (.inp) and the ids the
# reference Hugging Face tokenizer gives them (.out); MIT licence). The archive is checked against the SHA-256 pinned
# here. Needs only python3's standard library. tests/unit/test_tokenizer_fixtures.cpp reads them; the gpt-2 and
# llama-spm fixtures stay vendored in tests/fixtures/vocab. $WINNOW_PYPI_INDEX overrides the index.
set -euo pipefail
version=0.3.16
sdist=llama_cpp_python-$version.tar.gz
sha256=34ed0f9bd9431af045bb63d9324ae620ad0536653740e9bb163a2e1fcb973be6
vocabs="llama-bpe qwen2 phi-3 mpt starcoder refact command-r falcon deepseek-coder deepseek-llm"
dir=${1:-${WINNOW_VOCAB:-${XDG_CACHE_HOME:-$HOME/.cache}/winnow/vocab/llama-cpp-python-$version}}
marker="$dir/.complete-$sha256-chat-templates" # the chat templates are extracted too

if [ -f "$marker" ]; then echo "$dir"; exit 0; fi
command -v python3 >/dev/null || { echo "fetch-vocab: python3 is needed (scripts/setup-runtime.sh installs it)" >&2; exit 1; }
mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.fetch.XXXXXX"); trap 'rm -rf "$tmp"' EXIT
echo "fetching llama.cpp's tokenizer fixtures from PyPI ($sdist, 51 MB) into $dir" >&2
python3 - "$tmp" "$sdist" "$sha256" "$version" "${WINNOW_PYPI_INDEX:-https://pypi.org/simple}" $vocabs <<'PY'
import hashlib, json, os, sys, tarfile, urllib.parse, urllib.request

tmp, sdist, sha256, version, index = sys.argv[1:6]
vocabs = sys.argv[6:]

def fail(msg):
    sys.exit("fetch-vocab: " + msg)

def get(url, accept):
    return urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": accept, "User-Agent": "winnow-fetch"}), timeout=60)

project = index.rstrip("/") + "/llama-cpp-python/"
try:
    files = json.load(get(project, "application/vnd.pypi.simple.v1+json"))["files"]
except Exception as e:
    fail("cannot read the package index %s: %s" % (index, e))
entry = next((f for f in files if f.get("filename") == sdist), None)
if entry is None:
    fail("%s is not in the index %s" % (sdist, index))
path = os.path.join(tmp, sdist)
digest = hashlib.sha256()
try:
    with get(urllib.parse.urljoin(project, entry["url"]), "*/*") as r, open(path, "wb") as out:  # PEP 691: the url may be relative
        while chunk := r.read(1 << 16):
            out.write(chunk)
            digest.update(chunk)
except Exception as e:
    fail("download of %s failed: %s" % (entry["url"], e))
if digest.hexdigest() != sha256:
    fail("%s has sha256 %s, not the pinned %s" % (sdist, digest.hexdigest(), sha256))
prefix = "llama_cpp_python-%s/vendor/llama.cpp/models/" % version
wanted = {prefix + "ggml-vocab-%s.gguf%s" % (v, ext) for v in vocabs for ext in ("", ".inp", ".out")}
os.makedirs(os.path.join(tmp, "chat-templates"))
with tarfile.open(path) as tar:
    members = [m for m in tar.getmembers() if m.name in wanted and m.isfile()]
    missing = wanted - {m.name for m in members}
    if missing:
        fail("%s lacks %s" % (sdist, ", ".join(sorted(missing))))
    templates = [m for m in tar.getmembers() if m.isfile() and m.name.startswith(prefix + "templates/") and m.name.endswith(".jinja")
                 and "/" not in m.name[len(prefix + "templates/"):]]
    if len(templates) != 25:  # the pinned archive's count
        fail("%s holds %d chat templates under models/templates, not 25" % (sdist, len(templates)))
    for m in members + templates:
        sub = "chat-templates" if m in templates else ""
        with tar.extractfile(m) as src, open(os.path.join(tmp, sub, os.path.basename(m.name)), "wb") as dst:
            dst.write(src.read())
os.remove(path)
PY
for f in "$tmp"/ggml-vocab-*; do mv "$f" "$dir/"; done
rm -rf "$dir/chat-templates" && mv "$tmp/chat-templates" "$dir/chat-templates"
touch "$marker"
echo "$dir"
