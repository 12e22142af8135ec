#!/usr/bin/env python3
"""Writes the seed corpus of the libFuzzer targets: tests/fuzz/corpus/<target>/<seed> (deterministic, stdlib only).

    tests/fuzz/make_corpus.py [OUT_DIR]     (default: tests/fuzz/corpus next to this script)

Small valid inputs (a tiny llama GGUF with a byte-level BPE tokenizer, a matching safetensors checkpoint, a sharded
one, HF config/tokenizer JSON, calibration and sparse-pattern files) and slightly broken variants of each. Multi-file
targets take their files joined by SEP (tests/fuzz/fuzz_util.h kFileSep)."""
import json
import os
import random
import shutil
import struct
import sys

SEP = b"\n@@@@FILE@@@@\n"
ROOT = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "corpus")
rng = random.Random(16)

# vocab: the 256 GPT-2 byte characters, a few merges, <|endoftext|>, <|im_start|>, <|im_end|>
def byte_chars():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    return [chr(c) for c in cs]

TOKENS = byte_chars()
MERGES = ["H e", "l l", "o \u0120", "\u0120 w", "He ll", "o r", "l d"]
TOKENS += [m.replace(" ", "") for m in MERGES] + ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
N_VOCAB = len(TOKENS)
EOT = TOKENS.index("<|endoftext|>")
TYPES = [1] * (N_VOCAB - 3) + [3, 3, 3]
CHATML = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
          "You are a helpful AI assistant named SmolLM<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
          "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
D, FF, L, H = 16, 32, 1, 2

# ---- GGUF ----
T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)

def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b

def gval(t, v):
    if t == T_STR: return gstr(v)
    if t == T_ARR:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(gval(et, x) for x in items)
    fmt = {T_U8: "B", T_I8: "b", T_U16: "H", T_I16: "h", T_U32: "I", T_I32: "i", T_F32: "f", T_BOOL: "?", T_U64: "Q", T_I64: "q", T_F64: "d"}[t]
    return struct.pack("<" + fmt, v)

def gguf(kv, tensors, version=3, align=32):
    """kv: [(key, type, value)]; tensors: [(name, ne list, ggml type, bytes)]"""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kv))
    for k, t, v in kv:
        out += gstr(k) + struct.pack("<I", t) + gval(t, v)
    off, blobs = 0, []
    for name, ne, gt, data in tensors:
        out += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne) + struct.pack("<IQ", gt, off)
        blobs.append((off, data))
        off += (len(data) + align - 1) // align * align
    out += b"\0" * ((-len(out)) % align)
    data = bytearray(off)
    for o, d in blobs: data[o:o + len(d)] = d
    return out + bytes(data)

def f32(n, scale=0.05):
    return struct.pack("<%df" % n, *[rng.uniform(-scale, scale) for _ in range(n)])

def ones(n):
    return struct.pack("<%df" % n, *([1.0] * n))

def llama_tensors(gguf_names=True):
    """(name, pytorch shape, data): untied llama, vocab N_VOCAB, d 16, 1 layer, 2 heads, ff 32."""
    t = [("token_embd.weight", [N_VOCAB, D], f32(N_VOCAB * D)), ("output_norm.weight", [D], ones(D)), ("output.weight", [N_VOCAB, D], f32(N_VOCAB * D))]
    for i in range(L):
        b = "blk.%d." % i
        t += [(b + "attn_norm.weight", [D], ones(D)), (b + "ffn_norm.weight", [D], ones(D))]
        t += [(b + n, [D, D], f32(D * D)) for n in ("attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight")]
        t += [(b + "ffn_gate.weight", [FF, D], f32(FF * D)), (b + "ffn_up.weight", [FF, D], f32(FF * D)), (b + "ffn_down.weight", [D, FF], f32(FF * D))]
    return t

def llama_kv(extra=()):
    kv = [("general.architecture", T_STR, "llama"), ("general.name", T_STR, "fuzz-tiny"), ("llama.context_length", T_U32, 64),
          ("llama.embedding_length", T_U32, D), ("llama.block_count", T_U32, L), ("llama.feed_forward_length", T_U32, FF),
          ("llama.attention.head_count", T_U32, H), ("llama.attention.head_count_kv", T_U32, H),
          ("llama.attention.layer_norm_rms_epsilon", T_F32, 1e-5), ("llama.rope.dimension_count", T_U32, D // H),
          ("llama.rope.freq_base", T_F32, 10000.0),
          ("tokenizer.ggml.model", T_STR, "gpt2"), ("tokenizer.ggml.pre", T_STR, "gpt-2"),
          ("tokenizer.ggml.tokens", T_ARR, (T_STR, TOKENS)), ("tokenizer.ggml.token_type", T_ARR, (T_I32, TYPES)),
          ("tokenizer.ggml.merges", T_ARR, (T_STR, MERGES)), ("tokenizer.ggml.bos_token_id", T_U32, EOT),
          ("tokenizer.ggml.eos_token_id", T_U32, EOT), ("tokenizer.chat_template", T_STR, CHATML)]
    return kv + list(extra)

def llama_gguf(extra_kv=(), extra_tensors=()):
    ts = [(n, list(reversed(s)), 0, d) for n, s, d in llama_tensors()] + list(extra_tensors)
    return gguf(llama_kv(extra_kv), ts)

# ---- safetensors ----
HF_NAMES = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight", "output.weight": "lm_head.weight",
            "attn_norm.weight": "input_layernorm.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
            "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight", "attn_v.weight": "self_attn.v_proj.weight",
            "attn_output.weight": "self_attn.o_proj.weight", "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
            "ffn_down.weight": "mlp.down_proj.weight"}

def hf_name(n):
    if n.startswith("blk."):
        _, i, rest = n.split(".", 2)
        return "model.layers.%s.%s" % (i, HF_NAMES[rest])
    return HF_NAMES[n]

def safetensors(tensors, metadata=None):
    h, off, data = {}, 0, b""
    if metadata: h["__metadata__"] = metadata
    for name, shape, d in tensors:
        h[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(d)]}
        off += len(d); data += d
    hb = json.dumps(h).encode()
    hb += b" " * ((-len(hb)) % 8)
    return struct.pack("<Q", len(hb)) + hb + data

def hf_tensors(vocab=32):
    out = []
    for n, s, d in llama_tensors():
        if s[0] == N_VOCAB:  # the safetensors targets' config.json says vocab 32
            s = [vocab, D]; d = d[: vocab * D * 4]
        out.append((hf_name(n), s, d))
    return out

LLAMA_CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 32, "hidden_size": D, "num_hidden_layers": L,
                "num_attention_heads": H, "num_key_value_heads": H, "intermediate_size": FF, "max_position_embeddings": 64,
                "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": False, "hidden_act": "silu"}
GPT2_CONFIG = {"model_type": "gpt2", "n_embd": D, "n_layer": L, "n_head": H, "n_positions": 64, "vocab_size": 32, "layer_norm_epsilon": 1e-5,
               "activation_function": "gelu_new"}

def truncations(b, n=3):
    return [b[: len(b) * k // (n + 1)] for k in range(1, n + 1)]

def flip(b, count=4):
    b = bytearray(b)
    for _ in range(count):
        i = rng.randrange(len(b)); b[i] ^= 1 << rng.randrange(8)
    return bytes(b)

def main():
    if os.path.isdir(OUT): shutil.rmtree(OUT)
    seeds = {}
    def add(target, name, data):
        seeds.setdefault(target, []).append((name, data if isinstance(data, bytes) else data.encode()))

    # GGUF
    g = llama_gguf()
    add("fuzz_gguf", "tiny-llama.gguf", g)
    for i, t in enumerate(truncations(g)): add("fuzz_gguf", "truncated-%d.gguf" % i, t)
    add("fuzz_gguf", "flipped.gguf", flip(g))
    add("fuzz_gguf", "v2-metadata-only.gguf", gguf([(k, t, v) for k, t, v in llama_kv() if not k.startswith("tokenizer.ggml.tokens")], [], version=2))
    add("fuzz_gguf", "every-type.gguf", gguf([("u8", T_U8, 1), ("i8", T_I8, -1), ("u16", T_U16, 2), ("i16", T_I16, -2), ("u32", T_U32, 3),
        ("i32", T_I32, -3), ("f32", T_F32, 0.5), ("b", T_BOOL, True), ("s", T_STR, "x"), ("u64", T_U64, 2**40), ("i64", T_I64, -2**40),
        ("f64", T_F64, 1e300), ("arr", T_ARR, (T_ARR, [(T_I32, [1, 2]), (T_STR, ["a"])])), ("general.alignment", T_U32, 64)],
        [("t", [4, 2], 0, f32(8)), ("q", [32], 8, b"\0" * 34)], align=64))
    spm_tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)] + ["\u2581", "\u2581Hello", "\u2581world", "a", "b", "l", "o", "H", "e"]
    spm_kv = [("general.architecture", T_STR, "llama"), ("tokenizer.ggml.model", T_STR, "llama"), ("tokenizer.ggml.tokens", T_ARR, (T_STR, spm_tokens)),
              ("tokenizer.ggml.scores", T_ARR, (T_F32, [0.0] * 259 + [-float(i) for i in range(len(spm_tokens) - 259)])),
              ("tokenizer.ggml.token_type", T_ARR, (T_I32, [2, 3, 3] + [6] * 256 + [1] * (len(spm_tokens) - 259))),
              ("tokenizer.ggml.bos_token_id", T_U32, 1), ("tokenizer.ggml.eos_token_id", T_U32, 2), ("tokenizer.ggml.add_bos_token", T_BOOL, True)]
    add("fuzz_gguf", "spm-tokenizer.gguf", gguf(spm_kv, []))
    add("fuzz_gguf", "bpe-tokenizer.gguf", gguf(llama_kv()[11:], []))
    add("fuzz_gguf", "huge-count.gguf", b"GGUF" + struct.pack("<IQQ", 3, 2**62, 2**62))
    # checkpoint: the model + the optimizer state (64 parameters) and the run state
    state = " ".join(str(rng.getrandbits(64)) for _ in range(312)) + " 312"
    ck_kv = [("winnow.train.step", T_U32, 7), ("winnow.train.rng", T_STR, state), ("winnow.train.settings", T_STR, "lr=0.0003 seq=32")]
    ck_t = [("train.adam_m", [64], 0, f32(64)), ("train.adam_v", [64], 0, f32(64, 1e-4))]
    c = llama_gguf(ck_kv, ck_t)
    add("fuzz_checkpoint", "checkpoint.gguf", c)
    add("fuzz_checkpoint", "state-only.gguf", gguf(ck_kv, ck_t))
    add("fuzz_checkpoint", "bad-rng.gguf", gguf([ck_kv[0], ("winnow.train.rng", T_STR, "1 2 3 x"), ck_kv[2]], ck_t))
    add("fuzz_checkpoint", "wrong-size.gguf", gguf(ck_kv, [("train.adam_m", [63], 0, f32(63)), ck_t[1]]))
    add("fuzz_checkpoint", "truncated.gguf", c[: len(c) // 2])

    # safetensors
    st = safetensors(hf_tensors(), {"format": "pt"})
    add("fuzz_safetensors", "tiny-llama.safetensors", st)
    for i, t in enumerate(truncations(st)): add("fuzz_safetensors", "truncated-%d.safetensors" % i, t)
    add("fuzz_safetensors", "flipped.safetensors", flip(st))
    add("fuzz_safetensors", "empty-header.safetensors", struct.pack("<Q", 2) + b"{}")
    add("fuzz_safetensors", "overlap.safetensors", struct.pack("<Q", 96) + json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "BF16", "shape": [2, 1], "data_offsets": [4, 8]}}).encode().ljust(96) + b"\0" * 8)
    # sharded: index + two shards
    ts = hf_tensors()
    s1, s2 = ts[: len(ts) // 2], ts[len(ts) // 2:]
    names1, names2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    index = {"metadata": {"total_size": sum(len(d) for _, _, d in ts)}, "weight_map": {n: names1 for n, _, _ in s1} | {n: names2 for n, _, _ in s2}}
    ib = json.dumps(index, indent=1).encode()
    add("fuzz_safetensors_index", "sharded", ib + SEP + safetensors(s1) + SEP + safetensors(s2))
    add("fuzz_safetensors_index", "missing-shard", ib + SEP + safetensors(s1))
    bad = dict(index, weight_map=dict(index["weight_map"], **{"model.norm.weight": "../../etc/passwd"}))
    add("fuzz_safetensors_index", "escaping-shard", json.dumps(bad).encode() + SEP + safetensors(s1) + SEP + safetensors(s2))
    add("fuzz_safetensors_index", "index-only", json.dumps({"weight_map": {"x": names1}}))
    add("fuzz_safetensors_index", "not-an-object", b"[1, 2, {\"weight_map\": null}]")

    # config.json
    add("fuzz_hf_config", "llama.json", json.dumps(LLAMA_CONFIG, indent=1))
    add("fuzz_hf_config", "gpt2.json", json.dumps(GPT2_CONFIG))
    add("fuzz_hf_config", "llama-head-dim.json", json.dumps(dict(LLAMA_CONFIG, head_dim=8, rope_scaling=None)))
    add("fuzz_hf_config", "negative.json", json.dumps(dict(LLAMA_CONFIG, num_attention_heads=-2, hidden_size=2**31 - 1)))
    add("fuzz_hf_config", "float-dims.json", json.dumps(dict(LLAMA_CONFIG, hidden_size=16.5, rms_norm_eps=1e300)))
    add("fuzz_hf_config", "truncated.json", json.dumps(LLAMA_CONFIG)[:100])

    # tokenizer.json (+ tokenizer_config.json)
    vocab = {t: i for i, t in enumerate(TOKENS[:-3])}
    tj = {"version": "1.0", "added_tokens": [{"id": N_VOCAB - 3 + k, "content": t, "special": True} for k, t in enumerate(TOKENS[-3:])],
          "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
          "model": {"type": "BPE", "vocab": vocab, "merges": MERGES}}
    tc = {"bos_token": "<|endoftext|>", "eos_token": {"content": "<|im_end|>"}, "add_bos_token": False, "chat_template": CHATML}
    add("fuzz_tokenizer_json", "bpe", json.dumps(tj).encode() + SEP + json.dumps(tc).encode())
    smol = dict(tj, pre_tokenizer={"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, {"type": "ByteLevel", "use_regex": True}]},
                model=dict(tj["model"], merges=[m.split(" ") for m in MERGES]))
    add("fuzz_tokenizer_json", "smollm-pairs", json.dumps(smol))
    add("fuzz_tokenizer_json", "big-id", json.dumps(dict(tj, added_tokens=[{"id": 2**40, "content": "x"}])))
    add("fuzz_tokenizer_json", "negative-id", json.dumps(dict(tj, model=dict(tj["model"], vocab={"a": -1, "b": 0}))))
    add("fuzz_tokenizer_json", "unigram", json.dumps({"model": {"type": "Unigram", "vocab": [["a", 0.0]]}}))
    add("fuzz_tokenizer_json", "bos-id", json.dumps(tj).encode() + SEP + json.dumps({"bos_token_id": 99999, "eos_token_id": -5}).encode())

    # encode / decode (byte 0: options)
    inp = open(os.path.join(ROOT, "..", "fixtures", "vocab", "ggml-vocab-gpt-2.gguf.inp"), "rb").read()
    for i, text in enumerate([b"Hello world", "caf\u00e9 \U0001F600 \u4e2d\u6587".encode(), b"<|endoftext|> <s></s> x", b"\xff\xfe\xc3(", inp[:600], b"   \n\n\t 123456789 ''' 's"]):
        add("fuzz_tokenizer_encode", "text-%d" % i, bytes([i * 5 % 32]) + text)
    add("fuzz_tokenizer_encode", "ids", bytes([16 | 8]) + struct.pack("<8i", 0, 1, 50256, -1, 2**31 - 1, 13, 198, 32000))

    # chat template: the whole input is a Jinja template (rendered over a fixed conversation): the model templates
    # of the jinja2 parity check (tests/templates/fixtures) and snippets for the statements and expressions they use
    add("fuzz_chat_template", "chatml", CHATML)
    fixtures = os.path.join(ROOT, "..", "templates", "fixtures")
    for name in sorted(os.listdir(fixtures)):
        if name.endswith(".jinja"):
            add("fuzz_chat_template", name, open(os.path.join(fixtures, name), "rb").read())
    add("fuzz_chat_template", "namespace-loop", "{% set ns = namespace(n=0) %}{% for m in messages if m.role != 'system' %}"
        "{% set ns.n = ns.n + loop.index %}{{ loop.revindex }}{% if loop.last %}{{ ns.n }}{% endif %}{% else %}none{% endfor %}")
    add("fuzz_chat_template", "macro-recursion", "{% macro f(n, s='x') %}{{ s * n }}{% if n > 0 %}{{ f(n - 1, s=s ~ 'y') }}{% endif %}{% endmacro %}{{ f(5) }}")
    add("fuzz_chat_template", "filters", "{{ messages|selectattr('role', 'equalto', 'user')|map(attribute='content')|join(', ')|upper|tojson(indent=2) }}"
        "{{ messages[::-1][0]['content'][1:3]|replace('i', 'I')|trim|length is odd }}{{ range(3)|list|sort(reverse=true)|sum }}")
    add("fuzz_chat_template", "whitespace", "  {%- if true +%}\n  {{- ' a ' -}}\n{# c #}\n  {%+ raw %}{{ x }}{% endraw -%}\n{% filter lower %}X{% endfilter %}")
    # the deepest recursion the engine allows: a recursive macro whose body nests blocks and parentheses
    add("fuzz_chat_template", "deep-nesting", "{% macro f(n) %}" + "{% if true %}" * 60 + "{{ " + "(" * 10 + "f(n + 1)" + ")" * 10 + " }}" +
        "{% endif %}" * 60 + "{% endmacro %}{{ f(0) }}")
    add("fuzz_chat_template", "errors", "{{ raise_exception('Roles must alternate') if messages|length > 2 }}{{ foo.bar }}")

    # head calibration
    hc = {"model": "fuzz-tiny", "epsilon": 0.3, "factors": [{"algorithm": "fast", "delta": 0.01, "fudge_best": 0.2, "fudge_norm": 0.5},
          {"algorithm": "faithful", "delta": 0.1, "fudge_best": 1.0, "fudge_norm": 0.001}]}
    add("fuzz_head_calibration", "valid.head.json", json.dumps(hc, indent=2))
    add("fuzz_head_calibration", "out-of-range.head.json", json.dumps(dict(hc, factors=[{"delta": 2, "fudge_best": 0, "fudge_norm": 1}])))
    add("fuzz_head_calibration", "mistyped.head.json", json.dumps({"model": 1, "epsilon": "x", "factors": {"a": 1}}))
    add("fuzz_head_calibration", "array.head.json", b"[]")

    # sparse pattern: 2 layers, block 4, calib_ctx 16 (4 blocks)
    def keep_rows(nb, extra):
        return ["".join("1" if (c == 0 or c == r or (c == r - 1) or (r, c) in extra) and c <= r else "0" for c in range(nb)) for r in range(nb)]
    sp = {"format": "winnow-sparse-pattern", "version": 1, "model": {"name": "fuzz-tiny", "n_layer": 2, "n_embd": D, "n_head": H, "n_vocab": N_VOCAB},
          "method": "cf", "block": 4, "calib_ctx": 16, "calib_chunks": 1, "density": 0.5, "quantile": 0.96, "text_fnv1a": "0123456789abcdef",
          "layers": [{"keep": keep_rows(4, set())}, {"keep": keep_rows(4, {(3, 1)})}]}
    add("fuzz_sparse_pattern", "valid.sparse.json", json.dumps(sp, indent=1))
    add("fuzz_sparse_pattern", "odd-ctx.sparse.json", json.dumps(dict(sp, calib_ctx=13, block=5, layers=[{"keep": keep_rows(3, set())}] * 2)))
    add("fuzz_sparse_pattern", "above-diagonal.sparse.json", json.dumps(dict(sp, layers=[{"keep": ["1100", "1100", "1110", "1111"]}] * 2)))
    add("fuzz_sparse_pattern", "wrong-rows.sparse.json", json.dumps(dict(sp, layers=[{"keep": ["1"]}])))
    add("fuzz_sparse_pattern", "version-2.sparse.json", json.dumps(dict(sp, version=2)))

    # head basis: a 4 x 4 rotation (two plane rotations) with its variances and FNV-1a-64 checksum
    def fnv1a(b):
        h = 1469598103934665603
        for c in b: h = ((h ^ c) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
        return "%016x" % h
    c, s_ = 0.6, 0.8
    rot = [c, -s_, 0, 0, s_, c, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0]
    var = [4.0, 2.0, 1.0, 0.5]
    def basis(rot=rot, var=var, version=1, arch="winnow-head-basis", checksum=None, shape=(4, 4)):
        rb, vb = struct.pack("<%df" % len(rot), *rot), struct.pack("<%df" % len(var), *var)
        kv = [("general.architecture", T_STR, arch), ("winnow.head_basis.version", T_U32, version),
              ("winnow.head_basis.model_hash", T_STR, "1:0000000000000001"), ("winnow.head_basis.states", T_U64, 40),
              ("winnow.head_basis.checksum", T_STR, checksum or fnv1a(rb + vb))]
        return gguf(kv, [("head_basis.rotation", list(shape), 0, rb), ("head_basis.variance", [len(var)], 0, vb)])
    add("fuzz_head_basis", "valid.head-basis.gguf", basis())
    add("fuzz_head_basis", "bad-checksum.head-basis.gguf", basis(checksum="0123456789abcdef"))
    add("fuzz_head_basis", "not-orthonormal.head-basis.gguf", basis(rot=[1.5] + rot[1:]))
    add("fuzz_head_basis", "version-2.head-basis.gguf", basis(version=2))
    add("fuzz_head_basis", "not-square.head-basis.gguf", basis(shape=(8, 2)))
    add("fuzz_head_basis", "truncated.head-basis.gguf", basis()[:-24])

    total = 0
    for target, items in sorted(seeds.items()):
        d = os.path.join(OUT, target)
        os.makedirs(d, exist_ok=True)
        for name, data in items:
            with open(os.path.join(d, name), "wb") as f: f.write(data)
            total += len(data)
    print("%d seeds, %d bytes in %s" % (sum(len(v) for v in seeds.values()), total, OUT))
    if total > 2 * 1024 * 1024: sys.exit("corpus over 2 MB")

main()
