#!/usr/bin/env python3
"""Hostile model files under an address-space limit (issue 16 item 5).

Writes crafted files (GGUF with huge counts, lengths, dimensions and metadata numbers; safetensors with huge
header lengths, shapes, deep or bulky headers and shard names that escape the checkpoint directory; config.json
and tokenizer.json with huge numbers and bulky values) plus every input under tests/hostile/fuzz_inputs/ that is a
whole model-side file, and loads each with the real `winnow` binary under an address-space limit of 1 GiB beyond
the program's own startup footprint (bash `ulimit -v`; the footprint, found by bisection with `winnow --version`, is
tens of MiB for a CPU build and several hundred for one linked with cuBLAS, whose libraries are mapped at startup). Every case must end with a non-zero exit status (not a signal), exactly one line on stderr that names
the problem (the case's regex), no "bad_alloc" and nothing on stdout. Control cases: the intact tiny models load
under the same limit, so a limit that broke every load could not make the test pass.

The thread pools (OpenMP, OpenBLAS) reserve address space per core, which is not what this checks: the children
run with OMP_NUM_THREADS=1 and OPENBLAS_NUM_THREADS=1 so the result does not depend on the host's core count. An
AddressSanitizer build (scripts/sanitize.sh) cannot start under any RLIMIT_AS; its cases run without the limit.

usage: limits.py --winnow BIN --fixtures BUILD/fixtures --work DIR [--source-dir REPO] [--only NAME] [--list]
"""
import argparse
import json
import os
import re
import resource
import shutil
import struct
import subprocess
import sys
import time

DATA_LIMIT = 1 << 30  # bytes of address space for the data, beyond the startup footprint
LIMIT = DATA_LIMIT     # set in main(): footprint + DATA_LIMIT
LIMIT_ONLY = {"gguf-address-space"}  # cases about the limit itself: skipped where it cannot be applied (ASan)

# --- GGUF: a minimal writer and reader (enough to rewrite a fixture's metadata) -------------------------------
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<B", U64: "<Q", I64: "<q", F64: "<d"}


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, payload):
    return gstr(key) + struct.pack("<I", vtype) + payload


def kv_scalar(key, vtype, value):
    return kv(key, vtype, struct.pack(SCALAR[vtype], value))


def kv_string(key, value):
    return kv(key, STRING, gstr(value))


def gguf(kvs, tensor_infos=b"", n_tensors=0, data=b"", n_kv=None, align=32):
    head = b"GGUF" + struct.pack("<IQQ", 3, n_tensors, len(kvs) if n_kv is None else n_kv) + b"".join(kvs) + tensor_infos
    pad = (-len(head)) % align if data else 0
    return head + b"\0" * pad + data


def skip_value(b, pos, t):
    if t in SCALAR:
        return pos + struct.calcsize(SCALAR[t])
    if t == STRING:
        (n,) = struct.unpack_from("<Q", b, pos)
        return pos + 8 + n
    et, n = struct.unpack_from("<IQ", b, pos)
    pos += 12
    for _ in range(n):
        pos = skip_value(b, pos, et)
    return pos


def read_gguf(path):
    """(kvs as [(key, raw entry bytes)], n_tensors, raw tensor infos, data section)"""
    b = open(path, "rb").read()
    magic, _, n_tensors, n_kv = struct.unpack_from("<4sIQQ", b, 0)
    assert magic == b"GGUF", path
    pos, kvs = 24, []
    for _ in range(n_kv):
        start = pos
        (n,) = struct.unpack_from("<Q", b, pos)
        key = b[pos + 8:pos + 8 + n].decode()
        pos += 8 + n
        (t,) = struct.unpack_from("<I", b, pos)
        pos = skip_value(b, pos + 4, t)
        kvs.append((key, b[start:pos]))
    tstart = pos
    for _ in range(n_tensors):
        (n,) = struct.unpack_from("<Q", b, pos)
        pos += 8 + n
        (nd,) = struct.unpack_from("<I", b, pos)
        pos += 4 + 8 * nd + 4 + 8
    data_start = (pos + 31) // 32 * 32
    return kvs, n_tensors, b[tstart:pos], b[data_start:]


def rewrite_gguf(src, dst, replace=None, add=()):
    """src's tensors and metadata with entries replaced ({key: raw kv bytes}) or added."""
    kvs, n_tensors, infos, data = read_gguf(src)
    replace = replace or {}
    entries = [replace.get(k, raw) for k, raw in kvs] + list(add)
    return write(dst, gguf(entries, infos, n_tensors, data))


def tensor_info(name, dims, ggml_type=0, offset=0):
    return gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", ggml_type, offset)


# --- files ---------------------------------------------------------------------------------------------------
def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    return path


def sparse_file(path, size, head=b""):
    """A file of `size` bytes that takes no disk space beyond `head`."""
    write(path, head)
    os.truncate(path, size)
    return path


def copy_dir(src, dst):
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    return dst


def safetensors(header, data=b""):
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h)) + h + data


def st_dir(work, name, fixtures, header=None, raw=None, config=None):
    """A checkpoint directory: tiny-llama-hf's config.json (or `config`) beside one model.safetensors."""
    d = os.path.join(work, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    cfg = open(os.path.join(fixtures, "tiny-llama-hf", "config.json")).read() if config is None else config
    write(os.path.join(d, "config.json"), cfg)
    write(os.path.join(d, "model.safetensors"), raw if raw is not None else safetensors(header))
    return d


def index_dir(work, name, fixtures, shard_name, link=None):
    """tiny-llama-hf with its index naming `shard_name` for one tensor (and `link`: (name, target) symlink)."""
    d = copy_dir(os.path.join(fixtures, "tiny-llama-hf"), os.path.join(work, name))
    p = os.path.join(d, "model.safetensors.index.json")
    idx = json.load(open(p))
    idx["weight_map"]["model.norm.weight"] = shard_name
    write(p, json.dumps(idx))
    if link:
        os.symlink(link[1], os.path.join(d, link[0]))
    return d


def deep(n, open_="[", close="]"):
    return open_ * n + close * n


# --- the cases -------------------------------------------------------------------------------------------------
def cases(a):
    fx, w = os.path.abspath(a.fixtures), os.path.abspath(a.work)
    tiny, tiny_hf, gpt2_hf = os.path.join(fx, "tiny-llama.gguf"), os.path.join(fx, "tiny-llama-hf"), os.path.join(fx, "tiny-gpt2-hf")
    big = 1 << 62
    C = []  # (name, make() -> argv after "winnow", expected stderr regex); expect None: must load (control)

    def case(name, expect, command="info"):
        def deco(make):
            C.append((name, make, expect, command))
            return make
        return deco

    # controls: the intact models load under the same limit
    case("control-gguf", None)(lambda: tiny)
    case("control-safetensors-sharded", None)(lambda: tiny_hf)
    case("control-tokenizer-json", None, "generate")(lambda: gpt2_hf)

    g = lambda n: os.path.join(w, n + ".gguf")
    # GGUF header counts, lengths and dimensions
    case("gguf-tensor-count", r"tensor_count: \d+ tensors cannot fit")(lambda: write(g("tc"), gguf([], n_tensors=big)))
    case("gguf-kv-count", r"metadata_kv_count: \d+ entries cannot fit")(lambda: write(g("kvc"), gguf([], n_kv=big)))
    case("gguf-key-length", r"string length \d+ exceeds")(
        lambda: write(g("keylen"), gguf([struct.pack("<Q", big) + b"abcdefgh"], n_kv=1)))
    case("gguf-string-length", r"metadata key 'general.name': string length \d+ exceeds")(
        lambda: write(g("strlen"), gguf([kv("general.name", STRING, struct.pack("<Q", big) + b"x" * 16)])))
    case("gguf-array-count", r"array count \d+ needs more than")(
        lambda: write(g("arrcount"), gguf([kv("tokenizer.ggml.tokens", ARRAY, struct.pack("<IQ", U8, big))])))
    case("gguf-nested-array-count", r"array count \d+ needs more than")(
        lambda: write(g("nested"), gguf([kv("x", ARRAY, struct.pack("<IQ", ARRAY, 1) + struct.pack("<IQ", U32, big))])))
    # 12 M one-byte elements in a 12 MB file: ~100 bytes each once parsed (1.2 GB) unless the reader bounds memory
    case("gguf-array-bulk", r"metadata .*limit of \d+ MiB")(
        lambda: write(g("bulk"), gguf([kv("x", ARRAY, struct.pack("<IQ", U8, 12 << 20) + bytes(12 << 20))])))
    case("gguf-string-array-bulk", r"metadata .*limit of \d+ MiB")(
        lambda: write(g("strbulk"), gguf([kv("tokenizer.ggml.tokens", ARRAY, struct.pack("<IQ", STRING, 3 << 20) + struct.pack("<Q", 0) * (3 << 20))])))
    case("gguf-kv-bulk", r"metadata .*limit of \d+ MiB")(
        lambda: write(g("kvbulk"), gguf([kv_scalar("k%07d" % i, U8, 0) for i in range(1500000)])))
    case("gguf-tensor-bulk", r"tensor_count: the metadata and tensor list would take more than winnow's limit of \d+ MiB")(
        lambda: sparse_file(g("tbulk"), 24 + (3 << 20) * 32, b"GGUF" + struct.pack("<IQQ", 3, 3 << 20, 0)))
    case("gguf-n-dims", r"n_dims \d+ out of range")(
        lambda: write(g("ndims"), gguf([], gstr("t") + struct.pack("<I", 1 << 31), n_tensors=1) + bytes(64)))
    case("gguf-dims-huge", r"lies outside the \d+-byte file")(
        lambda: write(g("dims"), gguf([], tensor_info("token_embd.weight", [1 << 40, 1 << 20]), 1, bytes(64))))
    case("gguf-dims-overflow", r"shape overflows 64 bits")(
        lambda: write(g("dimsof"), gguf([], tensor_info("t", [1 << 32, 1 << 32, 1 << 32]), 1, bytes(64))))
    case("gguf-name-length", r"string length \d+ exceeds")(
        lambda: write(g("namelen"), gguf([], struct.pack("<Q", big) + b"t", n_tensors=1) + bytes(64)))
    case("gguf-address-space", r"cannot map|Cannot allocate memory|mmap")(
        lambda: sparse_file(g("sparse"), 4 << 30, b"GGUF" + struct.pack("<IQQ", 3, 0, 0)))
    # metadata numbers of a real model made absurd
    case("gguf-block-count", r"llama.block_count': value \d+ is absurdly large")(
        lambda: rewrite_gguf(tiny, g("blocks"), {"llama.block_count": kv_scalar("llama.block_count", U64, 1 << 40)}))
    case("gguf-embedding-length", r"embedding length = \d+ is out of range")(
        lambda: rewrite_gguf(tiny, g("embd"), {"llama.embedding_length": kv_scalar("llama.embedding_length", U32, 1 << 24)}))
    case("gguf-context-length", r"llama.context_length': value \d+ is absurdly large")(
        lambda: rewrite_gguf(tiny, g("ctx"), {"llama.context_length": kv_scalar("llama.context_length", U64, 1 << 50)}))
    case("gguf-feed-forward-length", r"tensor 'blk.0.ffn_up.weight' has ne \[64, 160\], expected \[64, 1048576\]")(
        lambda: rewrite_gguf(tiny, g("ff"), {"llama.feed_forward_length": kv_scalar("llama.feed_forward_length", U32, 1 << 20)}))
    case("gguf-tokenizer-bos", r"'tokenizer.ggml.bos_token_id': token id 4294967280 is out of range", "generate")(
        lambda: rewrite_gguf(tiny, g("bos"), {"tokenizer.ggml.bos_token_id": kv_scalar("tokenizer.ggml.bos_token_id", U32, 0xFFFFFFF0)}))
    # 2^32 + 5 read as int32 was the valid-looking id 5
    case("gguf-tokenizer-eos-wraps", r"'tokenizer.ggml.eos_token_id': token id 4294967301 is out of range", "generate")(
        lambda: rewrite_gguf(tiny, g("eos"), {"tokenizer.ggml.eos_token_id": kv_scalar("tokenizer.ggml.eos_token_id", U64, (1 << 32) + 5)}))

    # safetensors headers
    s = lambda n, **k: st_dir(w, n, fx, **k)
    case("st-header-length", r"header length: \d+ exceeds the 100 MB limit")(
        lambda: s("st-hlen", raw=struct.pack("<Q", big) + b"{}"))
    case("st-header-past-end", r"header length: \d+ runs past the end")(
        lambda: s("st-hpast", raw=struct.pack("<Q", 99_000_000) + b"{}"))
    case("st-shape-huge", r"data_offsets span 0 bytes but dtype and shape need \d+")(
        lambda: s("st-shape", header={"a": {"dtype": "F32", "shape": [1 << 40, 1 << 20], "data_offsets": [0, 0]}}))
    case("st-shape-overflow", r"shape overflows 64 bits")(
        lambda: s("st-shapeof", header={"a": {"dtype": "F32", "shape": [1 << 32, 1 << 32, 1 << 32], "data_offsets": [0, 0]}}))
    case("st-offsets-huge", r"lies outside the \d+-byte data buffer")(
        lambda: s("st-off", header={"a": {"dtype": "U8", "shape": [16], "data_offsets": [big, big + 16]}}))
    # 16 M nested arrays in a 32 MB header: ~90 bytes each once parsed (1.4 GB) unless the parser bounds depth
    case("st-header-deep", r"nested deeper than \d+")(
        lambda: s("st-deep", header=('{"a":' + deep(16 << 20) + "}").encode()))
    # 24 M numbers in a 48 MB header: 16-32 bytes each once parsed unless the parser bounds memory
    case("st-header-bulk", r"limit of \d+ MiB")(
        lambda: s("st-bulk", header=('{"a":{"dtype":"U8","shape":[' + "0," * (24 << 20) + '0],"data_offsets":[0,0]}}').encode()))
    # one 64 MB string: the lexer holds it whole before any value limit sees it; the 100 MB header cap bounds it
    case("st-header-long-string", r"tensor 'a': entry is not an object")(
        lambda: s("st-str", header=b'{"a":"' + b"x" * (64 << 20) + b'"}'))
    # the sharded index
    case("st-index-parent", r"shard name '\.\./x\.safetensors' must be a plain file name")(
        lambda: index_dir(w, "idx-parent", fx, "../x.safetensors"))
    case("st-index-absolute", r"shard name '/etc/passwd' must be a plain file name")(
        lambda: index_dir(w, "idx-abs", fx, "/etc/passwd"))
    case("st-index-nested", r"shard name 'sub/\.\./\.\./x\.safetensors' must be a plain file name")(
        lambda: index_dir(w, "idx-nested", fx, "sub/../../x.safetensors"))
    case("st-index-dotdot", r"shard name '\.\.' must be a plain file name")(lambda: index_dir(w, "idx-dotdot", fx, ".."))
    case("st-index-symlink-out", r"shard 'escape\.safetensors' resolves outside the checkpoint directory")(
        lambda: index_dir(w, "idx-link", fx, "escape.safetensors",
                          ("escape.safetensors", os.path.join(tiny_hf, "model-00001-of-00002.safetensors"))))
    case("st-index-symlink-dir", r"shard 'up\.safetensors' resolves outside the checkpoint directory")(
        lambda: index_dir(w, "idx-linkdir", fx, "up.safetensors", ("up.safetensors", "/")))
    case("st-index-huge-file", r"model.safetensors.index.json': index: \d+ bytes, larger than winnow's limit")(
        lambda: (lambda d: (sparse_file(os.path.join(d, "model.safetensors.index.json"), 2 << 30, b"{"), d)[1])(
            copy_dir(tiny_hf, os.path.join(w, "idx-huge"))))
    case("st-index-deep", r"nested deeper than \d+")(
        lambda: (lambda d: (write(os.path.join(d, "model.safetensors.index.json"), '{"weight_map":' + deep(4 << 20) + "}"), d)[1])(
            copy_dir(tiny_hf, os.path.join(w, "idx-deep"))))

    # config.json
    def cfg(name, **changes):
        c = json.load(open(os.path.join(tiny_hf, "config.json")))
        c.update(changes)
        d = copy_dir(tiny_hf, os.path.join(w, name))
        write(os.path.join(d, "config.json"), json.dumps(c) if changes else "")
        return d
    case("config-vocab-size", r"vocabulary size = \d+ is out of range")(lambda: cfg("cfg-vocab", vocab_size=1 << 30))
    case("config-vocab-float", r"key 'vocab_size' is out of range")(lambda: cfg("cfg-vocabf", vocab_size=1e300))
    case("config-hidden-size", r"key 'hidden_size' is out of range")(lambda: cfg("cfg-hidden", hidden_size=1 << 40))
    case("config-layers", r"block count = \d+ is out of range")(lambda: cfg("cfg-layers", num_hidden_layers=(1 << 31) - 1))
    case("config-positions", r"context length = \d+ is out of range")(lambda: cfg("cfg-pos", max_position_embeddings=(1 << 31) - 1))
    case("config-intermediate", r"tensor 'model.layers.0.mlp.gate_proj.weight' has shape \[160, 64\], expected \[1048576, 64\]")(
        lambda: cfg("cfg-ff", intermediate_size=1 << 20))
    case("config-deep", r"config.json.*nested deeper than \d+")(
        lambda: (lambda d: (write(os.path.join(d, "config.json"), '{"model_type":' + deep(16 << 20) + "}"), d)[1])(
            copy_dir(tiny_hf, os.path.join(w, "cfg-deep"))))
    case("config-bulk", r"config.json.*limit of \d+ MiB")(
        lambda: (lambda d: (write(os.path.join(d, "config.json"), '{"x":[' + "0," * (24 << 20) + "0]}"), d)[1])(
            copy_dir(tiny_hf, os.path.join(w, "cfg-bulk"))))

    case("config-huge-file", r"config.json': \d+ bytes, larger than winnow's limit of \d+ MiB for a JSON file")(
        lambda: (lambda d: (sparse_file(os.path.join(d, "config.json"), 2 << 30, b'{"model_type":"'), d)[1])(
            copy_dir(tiny_hf, os.path.join(w, "cfg-huge"))))

    # tokenizer.json (gpt2 checkpoint with its own tokenizer.json; loaded by generate)
    def tok(name, edit=None, text=None):
        d = copy_dir(gpt2_hf, os.path.join(w, name))
        p = os.path.join(d, "tokenizer.json")
        if text is not None:
            write(p, text)
        else:
            j = json.load(open(p))
            edit(j)
            write(p, json.dumps(j))
        return d
    gen = "generate"
    case("tokenizer-vocab-id-max", r"vocabulary id 16777215 is far past the \d+ entries", gen)(
        lambda: tok("tok-id", lambda j: j["model"]["vocab"].update({"hostile": (1 << 24) - 1})))
    case("tokenizer-vocab-id-huge", r"vocabulary id \d+ is not an id in \[0, 2\^24\)", gen)(
        lambda: tok("tok-idh", lambda j: j["model"]["vocab"].update({"hostile": 1 << 62})))
    case("tokenizer-added-id-max", r"added token id 16777215 is far past the \d+ entries", gen)(
        lambda: tok("tok-added", lambda j: j.setdefault("added_tokens", []).append({"id": (1 << 24) - 1, "content": "x", "special": True})))
    case("tokenizer-deep", r"tokenizer.json.*nested deeper than \d+", gen)(lambda: tok("tok-deep", text='{"model":' + deep(16 << 20) + "}"))
    case("tokenizer-bulk", r"tokenizer.json.*limit of \d+ MiB", gen)(
        lambda: tok("tok-bulk", text='{"model":{"type":"BPE","vocab":{},"merges":[' + '"a b",' * (8 << 20) + '"a b"]}}'))
    case("tokenizer-huge-file", r"tokenizer.json': \d+ bytes, larger than winnow's limit of \d+ MiB for a JSON file", gen)(
        lambda: (lambda d: (sparse_file(os.path.join(d, "tokenizer.json"), 2 << 30, b'{"model":"'), d)[1])(
            copy_dir(gpt2_hf, os.path.join(w, "tok-huge"))))
    # read whole by SentencePiece (bad_alloc before) and line by line (a failed allocation in getline only set badbit:
    # a silently truncated merge list)
    case("tokenizer-model-huge-file", r"tokenizer.model': \d+ bytes, larger than winnow's limit of \d+ MiB for a tokenizer file", gen)(
        lambda: (lambda d: ([os.remove(os.path.join(d, f)) for f in ("vocab.json", "merges.txt")],
                            sparse_file(os.path.join(d, "tokenizer.model"), 2 << 30), d)[2])(copy_dir(tiny_hf, os.path.join(w, "spm-huge"))))
    case("tokenizer-merges-huge-file", r"merges.txt': \d+ bytes, larger than winnow's limit of \d+ MiB for a tokenizer file", gen)(
        lambda: (lambda d: (sparse_file(os.path.join(d, "merges.txt"), 2 << 30, b"#version: 0.2\n"), d)[1])(
            copy_dir(tiny_hf, os.path.join(w, "merges-huge"))))
    case("tokenizer-config-deep", r"tokenizer_config.json.*nested deeper than \d+", gen)(
        lambda: (lambda d: (write(os.path.join(d, "tokenizer_config.json"), '{"chat_template":' + deep(16 << 20) + "}"), d)[1])(
            copy_dir(gpt2_hf, os.path.join(w, "tokcfg-deep"))))
    return C


def fuzz_cases(a):
    """Every fuzzing input under tests/hostile/fuzz_inputs that is one whole model-side file."""
    root = os.path.join(a.source_dir, "tests", "hostile", "fuzz_inputs")
    out = []
    for target, kind in (("fuzz_gguf", "gguf"), ("fuzz_hf_config", "config")):
        d = os.path.join(root, target)
        for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            src = os.path.join(d, f)
            if kind == "gguf":
                out.append(("fuzz-" + f, (lambda src=src: src), r"GGUF file|error", "generate"))
            else:
                def make(src=src, f=f):
                    dd = copy_dir(os.path.join(a.fixtures, "tiny-llama-hf"), os.path.join(a.work, "fuzz-" + f))
                    shutil.copy(src, os.path.join(dd, "config.json"))
                    return dd
                out.append(("fuzz-" + f, make, r"config.json", "info"))
    return out


def limit_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def startup_footprint(binary):
    """The smallest address-space limit (rounded up to 16 MiB) under which `winnow --version` runs: the program and
    the libraries it maps before reading any input."""
    def runs(limit):
        def pre():
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        return subprocess.run([binary, "--version"], capture_output=True, env=env, preexec_fn=pre, timeout=60).returncode == 0
    lo, hi = 0, 16 << 30
    if not runs(hi):
        raise SystemExit("limits.py: %s --version does not run even under 16 GiB of address space" % binary)
    step = 16 << 20
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        lo, hi = (lo, mid) if runs(mid) else (mid, hi)
    return hi


def is_asan(binary):
    """AddressSanitizer reserves terabytes of shadow address space at startup: such a binary cannot start under any
    RLIMIT_AS, so its cases run without the limit (the refusals are checks, not allocation failures, either way)."""
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def run_case(a, name, make, expect, command):
    path = make()
    argv = [a.winnow, command, "-m", path] + (["-p", "hi", "-n", "1"] if command == "generate" else [])
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, env=env, preexec_fn=None if a.asan else limit_address_space, timeout=300)
    secs = time.monotonic() - t0
    err = p.stderr.decode(errors="replace").strip()
    problems = []
    if expect is None:  # a control: must load
        if p.returncode != 0:
            problems.append("the intact model does not load under the limit (exit %d): %s" % (p.returncode, err))
    else:
        if p.returncode < 0:
            problems.append("killed by signal %d" % -p.returncode)
        elif p.returncode == 0:
            problems.append("exit 0: the hostile file was accepted")
        if "\n" in err:
            problems.append("more than one line on stderr")
        if "bad_alloc" in err or "std::" in err:
            problems.append("an allocation failure, not a refusal")
        if not re.search(expect, err):
            problems.append("stderr does not match /%s/" % expect)
        if p.stdout.strip():
            problems.append("stdout is not empty")
    if os.path.isdir(path) and path.startswith(a.work):
        shutil.rmtree(path, ignore_errors=True)  # keep the work dir small: bulky cases are tens of MB each
    elif os.path.isfile(path) and path.startswith(a.work):
        os.remove(path)
    return problems, p.returncode, err, secs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--winnow", required=True)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--source-dir", default=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    for f in ("tiny-llama.gguf", "tiny-llama-hf", "tiny-gpt2-hf"):
        if not os.path.exists(os.path.join(a.fixtures, f)):
            print("missing fixture %s in %s (run the fixture.tiny_models test first)" % (f, a.fixtures))
            return 1
    os.makedirs(a.work, exist_ok=True)
    a.asan = is_asan(a.winnow)
    if a.asan:
        print("AddressSanitizer build: the cases run WITHOUT the address-space limit (ASan's shadow memory needs terabytes of it)")
    else:
        global LIMIT
        footprint = startup_footprint(a.winnow)
        LIMIT = footprint + DATA_LIMIT
        print("startup footprint %d MiB: the limit is %d MiB (1 GiB for the data)" % (footprint >> 20, LIMIT >> 20))
    fuzz = fuzz_cases(a)
    if not fuzz:
        print("no fuzzing inputs under %s/tests/hostile/fuzz_inputs" % a.source_dir)
        return 1
    all_cases = cases(a) + fuzz
    if a.list:
        for c in all_cases:
            print(c[0])
        return 0
    if a.only:
        all_cases = [c for c in all_cases if c[0] in a.only]
        if len(all_cases) != len(a.only):
            print("unknown case in --only")
            return 1
    failed = 0
    for name, make, expect, command in all_cases:
        if a.asan and name in LIMIT_ONLY:
            print("skip %-28s (it tests the address-space limit itself)" % name)
            continue
        problems, rc, err, secs = run_case(a, name, make, expect, command)
        status = "FAIL" if problems else "ok"
        failed += bool(problems)
        print("%-4s %-28s exit %-4d %5.2fs  %s" % (status, name, rc, secs, err.splitlines()[0][:200] if err else ""))
        for pr in problems:
            print("       -> " + pr)
            if "\n" in err:
                print("       stderr: " + err[:2000].replace("\n", "\n               "))
    print("%d cases, %d failed (%s)" % (len(all_cases), failed, "no address-space limit: ASan" if a.asan else "address-space limit %d MiB" % (LIMIT >> 20)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
