#!/usr/bin/env python3
"""Writes a random-weight GGUF with a published model's shapes and its real vocabulary, for speed comparisons on a
machine that cannot download the model: the computation's cost depends only on the shapes, and llama.cpp needs a
real tokenizer to load the file.

usage: make_shaped_model.py SHAPE VOCAB_GGUF OUT.gguf

SHAPE: qwen2.5-0.5b (qwen2: q/k/v biases, tied head, 151,936 tokens), qwen3-0.6b (qwen3: q/k head norms, 16 heads
of 128 on a 1,024-wide embedding, tied head, 151,936 tokens) or llama3.2-1b (llama: Llama 3.1's rope scaling as
rope_freqs.weight, tied head, 128,256 tokens) or gemma3-1b (gemma3: 4 heads / 1 KV head of 256 on a 1,152-wide
embedding, q/k head norms, post-block norms, GeGLU, 5 of every 6 layers through a 512-key sliding window, tied head of
262,144 rows). VOCAB_GGUF: llama.cpp's vocabulary fixture of that family (ggml-vocab-qwen2.gguf for both Qwens /
ggml-vocab-llama-bpe.gguf, scripts/fetch-vocab.sh); llama.cpp ships none of Gemma's SentencePiece vocabulary, so
gemma3-1b takes Qwen2's, padded to 262,144 rows (the speed depends on the head's rows, not on the tokens' strings).
Matrices are F16, N(0, 0.02); norms 1; biases N(0, 0.02). Labelled synthetic in every report that uses it.
"""
import os
import sys

import numpy as np
import gguf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
from make_tiny_models import llama3_rope_divisors  # noqa: E402  (the fixtures' copy of the formula)

SHAPES = {
    "qwen2.5-0.5b": dict(arch="qwen2", d=896, layers=24, heads=14, kv=2, ff=4864, vocab=151936, ctx=32768, base=1000000.0, eps=1e-6),
    "qwen3-0.6b": dict(arch="qwen3", d=1024, layers=28, heads=16, kv=8, head_dim=128, ff=3072, vocab=151936, ctx=40960, base=1000000.0,
                       eps=1e-6),
    "llama3.2-1b": dict(arch="llama", d=2048, layers=16, heads=32, kv=8, ff=8192, vocab=128256, ctx=131072, base=500000.0, eps=1e-5,
                        scaling={"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
    "gemma3-1b": dict(arch="gemma3", d=1152, layers=26, heads=4, kv=1, head_dim=256, ff=6912, vocab=262144, ctx=32768, base=1000000.0,
                      eps=1e-6, window=512),
}


def strings(reader, key):
    f = reader.fields[key]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def ints(reader, key):
    f = reader.fields[key]
    return [int(f.parts[i][0]) for i in f.data]


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in SHAPES:
        sys.exit(__doc__)
    name, vocab_path, out = sys.argv[1:]
    s = SHAPES[name]
    r = gguf.GGUFReader(vocab_path)
    tokens = strings(r, "tokenizer.ggml.tokens")
    if len(tokens) > s["vocab"]:
        sys.exit("make_shaped_model: %s has %d tokens, more than %s's %d rows" % (vocab_path, len(tokens), name, s["vocab"]))
    # the embedding has the model's row count; the vocabulary file may hold fewer tokens (padding rows), as the
    # published files do: pad with unused tokens so that llama.cpp's vocabulary matches the rows
    types = ints(r, "tokenizer.ggml.token_type")
    tokens += ["[PAD%d]" % i for i in range(len(tokens), s["vocab"])]
    types += [5] * (s["vocab"] - len(types))
    rng = np.random.default_rng(7)
    hd = s.get("head_dim", s["d"] // s["heads"])
    qd = s["heads"] * hd
    mat = lambda rows, cols: rng.normal(0.0, 0.02, size=(rows, cols)).astype(np.float16)
    vec = lambda n, v=None: (np.ones(n) if v is None else rng.normal(0.0, 0.02, size=n)).astype(np.float32)
    tmp = out + ".tmp"
    w = gguf.GGUFWriter(tmp, s["arch"])
    w.add_name("synthetic " + name)
    w.add_context_length(s["ctx"])
    w.add_embedding_length(s["d"])
    w.add_block_count(s["layers"])
    w.add_feed_forward_length(s["ff"])
    w.add_head_count(s["heads"])
    w.add_head_count_kv(s["kv"])
    w.add_layer_norm_rms_eps(s["eps"])
    if "head_dim" in s:
        w.add_key_length(hd)
        w.add_value_length(hd)
    w.add_rope_dimension_count(hd)
    w.add_rope_freq_base(s["base"])
    if "window" in s:
        w.add_sliding_window(s["window"])
    w.add_file_type(1)  # mostly F16
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(bytes(r.fields["tokenizer.ggml.pre"].parts[r.fields["tokenizer.ggml.pre"].data[0]]).decode())
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(strings(r, "tokenizer.ggml.merges"))
    for key, add in (("tokenizer.ggml.bos_token_id", w.add_bos_token_id), ("tokenizer.ggml.eos_token_id", w.add_eos_token_id)):
        if key in r.fields:
            add(int(r.fields[key].parts[r.fields[key].data[0]][0]))
    w.add_tensor("token_embd.weight", mat(s["vocab"], s["d"]))  # tied head: no output.weight
    w.add_tensor("output_norm.weight", vec(s["d"]))
    if "scaling" in s:
        w.add_tensor("rope_freqs.weight", llama3_rope_divisors(s["base"], hd, s["scaling"]))
    qkv_bias = s["arch"] == "qwen2"
    for i in range(s["layers"]):
        b = "blk.%d." % i
        w.add_tensor(b + "attn_norm.weight", vec(s["d"]))
        w.add_tensor(b + "attn_q.weight", mat(qd, s["d"]))
        w.add_tensor(b + "attn_k.weight", mat(s["kv"] * hd, s["d"]))
        w.add_tensor(b + "attn_v.weight", mat(s["kv"] * hd, s["d"]))
        if qkv_bias:
            w.add_tensor(b + "attn_q.bias", vec(qd, 1))
            w.add_tensor(b + "attn_k.bias", vec(s["kv"] * hd, 1))
            w.add_tensor(b + "attn_v.bias", vec(s["kv"] * hd, 1))
        if s["arch"] in ("qwen3", "gemma3"):
            w.add_tensor(b + "attn_q_norm.weight", vec(hd))
            w.add_tensor(b + "attn_k_norm.weight", vec(hd))
        if s["arch"] == "gemma3":
            w.add_tensor(b + "post_attention_norm.weight", vec(s["d"]))
            w.add_tensor(b + "post_ffw_norm.weight", vec(s["d"]))
        w.add_tensor(b + "attn_output.weight", mat(s["d"], qd))
        w.add_tensor(b + "ffn_norm.weight", vec(s["d"]))
        w.add_tensor(b + "ffn_gate.weight", mat(s["ff"], s["d"]))
        w.add_tensor(b + "ffn_up.weight", mat(s["ff"], s["d"]))
        w.add_tensor(b + "ffn_down.weight", mat(s["d"], s["ff"]))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, out)
    print("wrote %s: synthetic %s, %d tokens" % (out, name, s["vocab"]))


if __name__ == "__main__":
    main()
