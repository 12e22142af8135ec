#!/usr/bin/env python3
"""llama.cpp as a second peer (issue #11 item 5), through llama-cpp-python's ctypes API (no Python-level Llama object).

  llama_cpp_peer.py convert HF_DIR OUT.gguf
      A llama-family HF checkpoint (config.json + safetensors, single or sharded) as a GGUF llama.cpp loads: matrices in
      their stored type (BF16 / F16 / F32), norms in F32, q/k rows permuted to llama.cpp's adjacent-pair RoPE layout, a
      tied head left out (llama.cpp then reads token_embd), and a placeholder SentencePiece-style vocabulary of the
      model's size (random-weight models have no tokenizer; the benchmark feeds token ids). Needs numpy and gguf-py
      only: safetensors are read by their header and memory-mapped, so bf16 needs no torch.

  llama_cpp_peer.py check-convert HF_DIR REFERENCE.gguf
      The conversion must hold the reference's tensors bit for bit (ctest fixture.llama_cpp_peer_convert, on the tiny
      bf16 llama that tests/fixtures/make_tiny_models.py writes both ways).

  llama_cpp_peer.py bench GGUF --name NAME --out JSON [--winnow-json BENCH.json] [--prompt 512 --gen 128 --reps 5]
      llama-bench's protocol, as `winnow bench decode` runs it: ppN = one decode of N tokens, the context cleared
      first; tgN = N single-token decodes after an empty context, each waited for. Two tg rows: `decode` feeds the
      token of the greedy run (llama-bench's measure: no sampling), `greedy` also samples with llama.cpp's own greedy
      sampler (the logits copied to the host and argmax'd on the CPU, as llama.cpp's generation does), which is what
      winnow's tg row measures. One warm-up, then `reps` runs: mean and sd of tokens/s. Every layer on the GPU
      (n_gpu_layers 999), flash attention off and on (rows say which). With --winnow-json (winnow's bench decode
      JSON on the same file), the greedy tokens from token 1 are compared with winnow's tg_token_ids.
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np


# ------------------------------------------------------------------------------------------------------ convert
def read_safetensors(hf_dir):
    """name -> (dtype string, shape, read-only numpy view of the raw little-endian data) for every tensor."""
    index = os.path.join(hf_dir, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    out = {}
    for fname in files:
        path = os.path.join(hf_dir, fname)
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
        for name, info in header.items():
            if name == "__metadata__":
                continue
            a, b = info["data_offsets"]
            out[name] = (info["dtype"], tuple(info["shape"]), data[a:b])
    return out


def as_array(dtype, shape, raw):
    """The tensor as (numpy array, gguf raw dtype or None). BF16 stays raw bits, shaped (..., 2 * last) in bytes."""
    import gguf
    if dtype == "F32":
        return raw.view("<f4").reshape(shape), None
    if dtype == "F16":
        return raw.view("<f2").reshape(shape), None
    if dtype == "BF16":
        return raw.reshape(shape[:-1] + (2 * shape[-1],)), gguf.GGMLQuantizationType.BF16
    raise SystemExit("convert: tensor type %s not handled" % dtype)


def to_f32(dtype, shape, raw):
    """A norm's weights as F32 (llama.cpp's converter keeps 1-D tensors in F32)."""
    if dtype == "BF16":
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
    return as_array(dtype, shape, raw)[0].astype(np.float32)


def permute_rows(a, n_head):
    """HF's rotate-half row order -> llama.cpp's adjacent-pair order (as its convert_hf_to_gguf.py permutes q and k).
    Rows are permuted whole, so it works on raw bf16 bytes as on values."""
    rows = a.shape[0]
    return np.ascontiguousarray(a.reshape(n_head, 2, rows // n_head // 2, *a.shape[1:]).swapaxes(1, 2).reshape(a.shape))


def rope_theta(cfg):
    params = cfg.get("rope_parameters") or {}
    if isinstance(params, dict) and "rope_theta" in params:
        return float(params["rope_theta"])
    return float(cfg.get("rope_theta", 10000.0))


def add_placeholder_vocab(w, n_vocab):
    """<unk>, <s>, </s>, the 256 byte tokens, then t<i>: a SentencePiece-shaped vocabulary llama.cpp accepts."""
    tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    tokens += ["t%d" % i for i in range(len(tokens), n_vocab)]
    types += [1] * (n_vocab - len(types))
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens[:n_vocab])
    w.add_token_scores([0.0] * n_vocab)
    w.add_token_types(types[:n_vocab])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)


def convert(hf_dir, out_path):
    import gguf
    cfg = json.load(open(os.path.join(hf_dir, "config.json")))
    if cfg.get("model_type") != "llama":
        raise SystemExit("convert: only llama-family checkpoints (model_type %r)" % cfg.get("model_type"))
    # what this converter does not carry over would silently make another model: refuse it
    rope_type = (cfg.get("rope_parameters") or {}).get("rope_type", "default")
    if cfg.get("rope_scaling") or rope_type != "default":
        raise SystemExit("convert: RoPE scaling (%r) is not converted" % (cfg.get("rope_scaling") or rope_type))
    if cfg.get("attention_bias") or cfg.get("mlp_bias"):
        raise SystemExit("convert: attention or MLP biases are not converted")
    d, n_layer = cfg["hidden_size"], cfg["num_hidden_layers"]
    n_head = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads") or n_head
    head_dim = cfg.get("head_dim") or d // n_head
    t = read_safetensors(hf_dir)
    tied = "lm_head.weight" not in t
    w = gguf.GGUFWriter(out_path + ".tmp", "llama")
    w.add_name(os.path.basename(os.path.normpath(hf_dir)))
    w.add_context_length(cfg.get("max_position_embeddings", 2048))
    w.add_embedding_length(d)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_layer_norm_rms_eps(cfg.get("rms_norm_eps", 1e-5))
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(rope_theta(cfg))
    w.add_vocab_size(cfg["vocab_size"])
    add_placeholder_vocab(w, cfg["vocab_size"])

    def matrix(gguf_name, hf_name, permute_heads=0):
        arr, raw = as_array(*t[hf_name])
        if permute_heads:
            arr = permute_rows(arr, permute_heads)
        w.add_tensor(gguf_name, arr, raw_dtype=raw)

    def norm(gguf_name, hf_name):
        w.add_tensor(gguf_name, np.ascontiguousarray(to_f32(*t[hf_name])))

    matrix("token_embd.weight", "model.embed_tokens.weight")
    norm("output_norm.weight", "model.norm.weight")
    if not tied:
        matrix("output.weight", "lm_head.weight")
    for i in range(n_layer):
        b, h = "blk.%d." % i, "model.layers.%d." % i
        norm(b + "attn_norm.weight", h + "input_layernorm.weight")
        matrix(b + "attn_q.weight", h + "self_attn.q_proj.weight", n_head)
        matrix(b + "attn_k.weight", h + "self_attn.k_proj.weight", n_kv)
        matrix(b + "attn_v.weight", h + "self_attn.v_proj.weight")
        matrix(b + "attn_output.weight", h + "self_attn.o_proj.weight")
        norm(b + "ffn_norm.weight", h + "post_attention_layernorm.weight")
        matrix(b + "ffn_gate.weight", h + "mlp.gate_proj.weight")
        matrix(b + "ffn_up.weight", h + "mlp.up_proj.weight")
        matrix(b + "ffn_down.weight", h + "mlp.down_proj.weight")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(out_path + ".tmp", out_path)


def check_convert(hf_dir, reference):
    """The conversion of hf_dir must hold the reference GGUF's tensors bit for bit (names, types, shapes, bytes): the
    test suite's check against the fixture that make_tiny_models.py writes independently (tiny-llama-bf16*)."""
    import tempfile
    import gguf
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "converted.gguf")
        convert(hf_dir, out)
        got = {t.name: t for t in gguf.GGUFReader(out).tensors}
        want = {t.name: t for t in gguf.GGUFReader(reference).tensors}
        problems = ["%s: missing" % n for n in sorted(set(want) - set(got))] + ["%s: not in the reference" % n for n in sorted(set(got) - set(want))]
        for n in sorted(set(want) & set(got)):
            x, y = got[n], want[n]
            if x.tensor_type != y.tensor_type or list(x.shape) != list(y.shape):
                problems.append("%s: %s %s, reference %s %s" % (n, x.tensor_type.name, list(x.shape), y.tensor_type.name, list(y.shape)))
            elif not np.array_equal(np.asarray(x.data).view(np.uint8), np.asarray(y.data).view(np.uint8)):
                problems.append("%s: other bytes" % n)
    if problems:
        raise SystemExit("check-convert: %d of %d tensors differ from %s: %s" % (len(problems), len(want), reference, "; ".join(problems[:6])))
    print("check-convert: %d tensors equal to %s bit for bit" % (len(want), reference))


# -------------------------------------------------------------------------------------------------------- bench
class Peer:
    """One llama.cpp model and context, driven through the C API."""

    def __init__(self, path, n_ctx, n_batch, flash_attn, gpu_layers, threads):
        import llama_cpp as L
        self.L = L
        self.model = L.llama_model_load_from_file(path.encode(), self._model_params(gpu_layers))
        if not self.model:
            raise SystemExit("llama.cpp could not load %s" % path)
        cp = L.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch = n_ctx, n_batch, n_batch
        cp.flash_attn = flash_attn
        self.kv_types = (cp.type_k, cp.type_v)  # llama.cpp's defaults (ggml type ids: 1 = F16), recorded in the report
        cp.n_threads = cp.n_threads_batch = threads
        self.ctx = L.llama_init_from_model(self.model, cp)
        if not self.ctx:
            raise SystemExit("llama.cpp could not make a context for %s" % path)
        self.n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(self.model))
        self.batch = L.llama_batch_init(n_batch, 0, 1)
        chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy())
        self.greedy = chain

    def _model_params(self, gpu_layers):
        mp = self.L.llama_model_default_params()
        mp.n_gpu_layers = gpu_layers
        return mp

    def close(self):
        L = self.L
        L.llama_sampler_free(self.greedy)
        L.llama_batch_free(self.batch)
        L.llama_free(self.ctx)
        L.llama_model_free(self.model)

    def clear(self):
        L = self.L
        L.llama_memory_clear(L.llama_get_memory(self.ctx), True)

    def fill(self, tokens, pos0):
        """The batch: tokens at positions pos0..., one sequence, logits for the last token only."""
        b = self.batch
        for i, tok in enumerate(tokens):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = tok, pos0 + i, 1, 0
            b.seq_id[i][0] = 0
        b.logits[len(tokens) - 1] = 1
        b.n_tokens = len(tokens)

    def run(self):
        rc = self.L.llama_decode(self.ctx, self.batch)
        if rc != 0:
            raise RuntimeError("llama_decode returned %d" % rc)

    def pp(self, tokens):
        self.clear()
        self.fill(tokens, 0)  # outside the timed region: 512 ctypes writes from Python are not llama.cpp's time
        self.L.llama_synchronize(self.ctx)
        t = time.perf_counter()
        self.run()
        self.L.llama_synchronize(self.ctx)
        return len(tokens) / (time.perf_counter() - t)

    def tg(self, n, first, feed=None):
        """n single-token steps from an empty context; feed = the tokens to decode (no sampling), else greedy."""
        L = self.L
        self.clear()
        L.llama_synchronize(self.ctx)
        tok, out = first, []
        t = time.perf_counter()
        for i in range(n):
            self.fill([tok], i)
            self.run()
            if feed is None:
                tok = L.llama_sampler_sample(self.greedy, self.ctx, -1)
            else:
                L.llama_synchronize(self.ctx)
                tok = feed[i]
            out.append(tok)
        dt = time.perf_counter() - t
        return n / dt, out


def stats(xs):
    mean = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return mean, sd


def bench(a):
    import llama_cpp as L
    L.llama_backend_init()
    if a.gpu_layers and not L.llama_supports_gpu_offload():
        raise SystemExit("this llama.cpp build has no GPU offload (llama_supports_gpu_offload() is false)")
    report = {"model": a.name, "file": a.gguf, "file_bytes": os.path.getsize(a.gguf), "llama_cpp_python": L.__version__,
              "gpu_offload": bool(L.llama_supports_gpu_offload()), "n_gpu_layers": a.gpu_layers,
              "system_info": L.llama_print_system_info().decode(errors="replace").strip(), "rows": []}
    winnow_ids = None
    if a.winnow_json:
        try:  # winnow's run may have failed or been cut short: then there is nothing to compare, and the peer still runs
            rows = json.load(open(a.winnow_json))
            winnow_ids = next((r.get("tg_token_ids") for r in rows if r["test"].startswith("tg")), None)
            report["winnow_kv_type"] = next((r.get("kv_type") for r in rows if "kv_type" in r), None)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            report["winnow_json_error"] = "%s: %s" % (type(e).__name__, e)
    for fa in a.flash_attn:
        p = Peer(a.gguf, a.prompt + a.gen + 16, max(a.prompt, 1), bool(fa), a.gpu_layers, a.threads)
        rng = np.random.default_rng(0)
        prompt = [int(x) for x in rng.integers(0, p.n_vocab, a.prompt)]
        first = 1 % p.n_vocab
        rows = []
        if a.prompt:
            p.pp(prompt)  # warm-up
            rows.append(("pp%d" % a.prompt, a.prompt, [p.pp(prompt) for _ in range(a.reps)]))
        p.tg(a.gen, first)  # warm-up
        runs = [p.tg(a.gen, first) for _ in range(a.reps)]
        greedy_ids = runs[-1][1]
        rows.append(("tg%d" % a.gen, a.gen, [r[0] for r in runs], "greedy"))
        rows.append(("tg%d" % a.gen, a.gen, [p.tg(a.gen, first, greedy_ids)[0] for _ in range(a.reps)], "decode"))
        for row in rows:
            mean, sd = stats(row[2])
            r = {"test": row[0], "n_tokens": row[1], "flash_attn": bool(fa), "tokens_per_s": mean, "tokens_per_s_sd": sd,
                 "us_per_token": 1e6 / mean, "runs": len(row[2]), "kv_type_k_v": [int(x) for x in p.kv_types]}
            if len(row) > 3:
                r["tg_mode"] = row[3]
            if row[0].startswith("tg") and r.get("tg_mode") == "greedy":
                r["tg_token_ids"] = greedy_ids
                if winnow_ids:
                    same = next((i for i, (x, y) in enumerate(zip(greedy_ids, winnow_ids)) if x != y), min(len(greedy_ids), len(winnow_ids)))
                    r["greedy_prefix_equal_to_winnow"] = same
            report["rows"].append(r)
            print("%-24s fa=%d %-4s %-7s %10.1f ± %6.1f tok/s %8.1f us/tok" % (a.name, fa, row[0], r.get("tg_mode", ""), mean, sd, 1e6 / mean)
                  + ("  greedy = winnow's for %d of %d tokens" % (r["greedy_prefix_equal_to_winnow"], len(greedy_ids)) if "greedy_prefix_equal_to_winnow" in r else ""),
                  flush=True)
        p.close()
        tmp = a.out + ".tmp"
        json.dump(report, open(tmp, "w"), indent=1)
        os.replace(tmp, a.out)  # rewritten after each setting: a run cut short keeps what it measured


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert")
    c.add_argument("hf_dir")
    c.add_argument("out")
    k = sub.add_parser("check-convert")
    k.add_argument("hf_dir")
    k.add_argument("reference")
    b = sub.add_parser("bench")
    b.add_argument("gguf")
    b.add_argument("--name", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--winnow-json")
    b.add_argument("--prompt", type=int, default=512)
    b.add_argument("--gen", type=int, default=128)
    b.add_argument("--reps", type=int, default=5)
    b.add_argument("--flash-attn", type=int, nargs="+", default=[0, 1])
    b.add_argument("--gpu-layers", type=int, default=999)
    b.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    if a.cmd == "convert":
        convert(a.hf_dir, a.out)
    elif a.cmd == "check-convert":
        check_convert(a.hf_dir, a.reference)
    else:
        bench(a)


if __name__ == "__main__":
    sys.exit(main())
