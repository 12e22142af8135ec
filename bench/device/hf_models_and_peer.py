#!/usr/bin/env python3
"""On the GPU machine: random-weight bf16 models made from transformers configs (nothing large travels), winnow's
`bench decode --device cuda` on each, and the HF transformers peer on the same weights (batch 1, greedy, 128 new
tokens after a 16-token prompt: eager with the dynamic cache, and static cache + torch.compile where time allows).
With --llama-peer (run.sh's command for llama_cpp_peer.py), llama.cpp's CUDA backend on the llama-shaped ones too:
converted to a bf16 GGUF, tg128 as winnow's bench decode measures it (OUT/llama-cpp-<model>.json).
After every model's timings (so that the timing table comes first under run.sh's cap), #11's logits proof on each:
winnow logits (prefill and decode) against HF float32 on the same weights and 64 random ids (logits_parity.py), in
OUT/logits-parity-<model>.json.
Writes OUT/bench-<model>.json (winnow) and OUT/hf-peer.json; prints a table. Then, last (what run.sh's cap may cut),
prefill's A/B per model: pp512 on the fp32 sgemm (WINNOW_CUDA_SPLIT_PRODUCTS=0) and with a block per attention row
(WINNOW_CUDA_TILED_ATTENTION=0), against the pp512 of OUT/bench-<model>.json."""
import argparse
import json
import os
import shlex
import subprocess
import time

import torch
import transformers
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

import logits_parity


def rope(theta):
    """The rotary base as this transformers takes it: transformers 5 keeps it in rope_parameters (and saves only that),
    earlier versions as rope_theta. winnow's loader reads both forms."""
    if int(transformers.__version__.split(".")[0]) >= 5:
        return {"rope_parameters": {"rope_type": "default", "rope_theta": theta}}
    return {"rope_theta": theta}


MODELS = {
    # SmolLM2-135M's shapes (tied head, GQA 9/3)
    "smollm2-135m-bf16": LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                                     num_key_value_heads=3, max_position_embeddings=8192, rms_norm_eps=1e-5, **rope(100000.0),
                                     tie_word_embeddings=True),
    "gpt2-124m-bf16": GPT2Config(),
    # Llama-3.2-1B's shapes (plain RoPE: winnow does not implement llama3 rope scaling yet; it does not change the cost)
    "llama-3.2-1b-shape-bf16": LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                                           num_key_value_heads=8, head_dim=64, max_position_embeddings=8192, rms_norm_eps=1e-5, **rope(500000.0),
                                           tie_word_embeddings=True),
}


def make(name, cfg, root):
    path = os.path.join(root, name)
    if not os.path.exists(os.path.join(path, "config.json")):
        torch.manual_seed(0)
        with torch.device("cuda" if torch.cuda.is_available() else "cpu"):  # the CPU for the CPU's parity report
            m = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
        m.save_pretrained(path)  # safetensors (transformers 5 has no other format nor the safe_serialization flag)
        del m
        torch.cuda.empty_cache()
    return path


def hf_tokens_per_s(path, compiled=None):
    """HF generate's tokens/s, batch 1, greedy: eager (compiled None), or with a static cache compiled by generate
    ("generate") or by hand without CUDA graphs ("no-cudagraphs")."""
    m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).cuda().eval()
    ids = torch.randint(0, m.config.vocab_size, (1, 16), device="cuda", generator=torch.Generator("cuda").manual_seed(1))
    kw = dict(max_new_tokens=128, min_new_tokens=128, do_sample=False)
    if compiled == "generate":
        # transformers' own path: with a static cache, generate compiles the decoding forward itself (CompileConfig,
        # CUDA graphs included) and marks each step, which a forward wrapped by hand does not: on 2026-12-04 (H200,
        # transformers 5.x) the hand-wrapped reduce-overhead forward failed with "accessing tensor output of CUDAGraphs
        # that has been overwritten by a subsequent run"
        m.generation_config.cache_implementation = "static"
        if hasattr(transformers, "CompileConfig"):
            m.generation_config.compile_config = transformers.CompileConfig(fullgraph=True, mode="reduce-overhead")
    elif compiled == "no-cudagraphs":  # the fallback: compiled kernels without CUDA graphs, so nothing is overwritten
        m.generation_config.cache_implementation = "static"
        m.forward = torch.compile(m.forward, mode="max-autotune-no-cudagraphs", fullgraph=True)
    for _ in range(2 if compiled else 1):
        m.generate(ids, **kw)  # warm-up (and compilation)
    times = []
    for _ in range(3):
        torch.cuda.synchronize()
        t = time.perf_counter()
        m.generate(ids, **kw)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    del m
    torch.cuda.empty_cache()
    return 128 / sorted(times)[1]


def llama_cpp_tokens_per_s(path, name, a):
    """llama.cpp on the same weights: converted to GGUF (bf16 matrices as stored), then llama_cpp_peer.py's bench; the
    best tg128 greedy row (flash attention off or on) in tokens/s."""
    cmd = shlex.split(a.llama_peer)
    gguf_path = path.rstrip("/") + ".gguf"  # converted every time: a warm machine may hold an older converter's file
    r = subprocess.run(cmd + ["convert", path, gguf_path], capture_output=True, text=True, timeout=90)
    if r.returncode != 0:
        raise RuntimeError("llama_cpp_peer.py convert: rc %d: %s" % (r.returncode, r.stderr.strip()[-300:]))
    out = os.path.join(a.out, "llama-cpp-%s.json" % name)
    r = subprocess.run(cmd + ["bench", gguf_path, "--name", name, "--out", out, "--winnow-json", os.path.join(a.out, "bench-%s.json" % name)],
                       capture_output=True, text=True, timeout=90)
    print(r.stdout, end="", flush=True)
    if r.returncode != 0:
        raise RuntimeError("llama_cpp_peer.py bench: rc %d: %s" % (r.returncode, r.stderr.strip()[-300:]))
    rows = json.load(open(out))["rows"]
    return max(x["tokens_per_s"] for x in rows if x["test"].startswith("tg") and x.get("tg_mode") == "greedy")


def variant_bench(winnow, path, name, env, out, variant, test, extra_env, what):
    """One of winnow's tests again with a switch set (extra_env), in a process of its own: bench-<name>-<variant>.json.
    test "tg128" or "pp512". The megakernel A/B (WINNOW_CUDA_MEGAKERNEL=1, src/backend/cuda/step_program.h: one
    cooperative kernel with grid barriers against a graph of kernels) and the prefill products' A/B
    (WINNOW_CUDA_SPLIT_PRODUCTS=0: the fp32 sgemm instead of the bf16 split products, src/backend/cuda/split_product.h), and
    the prefill attention's (WINNOW_CUDA_TILED_ATTENTION=0: attention.cu's block per row and head instead of
    attention_tiles.cu's shared key tiles)."""
    p, n = ("0", "128") if test == "tg128" else ("512", "0")
    try:
        r = subprocess.run([winnow, "bench", "decode", "-m", path, "--device", "cuda", "-p", p, "-n", n, "-r", "5", "--json"],
                           capture_output=True, text=True, env=dict(env, **extra_env), timeout=60)
    except subprocess.TimeoutExpired:
        print("%s: %s %s timed out" % (name, test, what), flush=True)
        return
    if r.returncode != 0:
        print("%s: %s %s failed: %s" % (name, test, what, r.stderr.strip()[-300:]), flush=True)
        return
    open(os.path.join(out, "bench-%s-%s.json" % (name, variant)), "w").write(r.stdout)
    try:
        v = next((x["tokens_per_s"] for x in json.loads(r.stdout) if x["test"].startswith(test[:2])), None)
    except (ValueError, KeyError, TypeError) as e:  # the model's other measurements must not be lost to this one
        print("%s: %s %s: unreadable output (%s)" % (name, test, what, e), flush=True)
        return
    print("%s: %s %s (%s): %s tok/s" % (name, test, what, " ".join("%s=%s" % kv for kv in extra_env.items()), v), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--winnow", required=True)
    ap.add_argument("--libs", default="")
    ap.add_argument("--out", required=True)
    ap.add_argument("--models-dir", default="/tmp/winnow-hf-models")
    ap.add_argument("--llama-peer", help="command that runs bench/device/llama_cpp_peer.py with llama.cpp's CUDA build")
    a = ap.parse_args()
    peer, table, llama_cpp = {}, [], {}
    env = dict(os.environ, LD_LIBRARY_PATH=a.libs)  # winnow's processes: the bundle's libraries
    for name, cfg in MODELS.items():
        # each model on its own: a failure (or a timeout) is recorded and the next model still runs, and hf-peer.json
        # is rewritten after every model, so a run killed at its time limit keeps what it measured
        tg = roof = None
        try:
            path = make(name, cfg, a.models_dir)
            r = subprocess.run([a.winnow, "bench", "decode", "-m", path, "--device", "cuda", "-p", "512", "-n", "128", "-r", "5", "--json"],
                               capture_output=True, text=True, env=env, timeout=90)
            rows = []
            if r.returncode == 0:
                open(os.path.join(a.out, "bench-%s.json" % name), "w").write(r.stdout)
                rows = json.loads(r.stdout)
            else:
                print("winnow bench on %s failed: %s" % (name, r.stderr.strip()), flush=True)
            tg = next((x["tokens_per_s"] for x in rows if x["test"].startswith("tg")), None)
            roof = next((x.get("roofline_fraction") for x in rows if x["test"].startswith("tg")), None)
            pp = next((x["tokens_per_s"] for x in rows if x["test"].startswith("pp")), None)
            print("%s: winnow pp512 %s tok/s, tg128 %s tok/s" % (name, pp, tg), flush=True)
            variant_bench(a.winnow, path, name, env, a.out, "megakernel", "tg128", {"WINNOW_CUDA_MEGAKERNEL": "1"}, "with the step program")
            peer[name] = {"eager": hf_tokens_per_s(path)}
            if a.llama_peer and isinstance(cfg, LlamaConfig):
                try:
                    llama_cpp[name] = peer[name]["llama_cpp_greedy"] = llama_cpp_tokens_per_s(path, name, a)
                except Exception as e:  # a peer failure is reported, not fatal
                    llama_cpp[name] = None
                    peer[name]["llama_cpp_error"] = ("%s: %s" % (type(e).__name__, e))[:300]
            if name == "smollm2-135m-bf16":  # compilation is slow: the first model only
                try:
                    peer[name]["static_compiled"] = hf_tokens_per_s(path, "generate")
                except Exception as e:  # a peer failure is reported, not fatal; then the fallback
                    peer[name]["static_compiled_error"] = str(e)[:300]
                    try:
                        peer[name]["static_compiled_no_cudagraphs"] = hf_tokens_per_s(path, "no-cudagraphs")
                    except Exception as e2:
                        peer[name]["static_compiled_no_cudagraphs_error"] = str(e2)[:300]
        except Exception as e:  # subprocess.TimeoutExpired included
            peer.setdefault(name, {})["error"] = ("%s: %s" % (type(e).__name__, e))[:300]
            print("%s: %s" % (name, peer[name]["error"]), flush=True)
        measured = [v for k, v in peer.get(name, {}).items() if not k.endswith("error") and not k.startswith("llama_cpp")]
        best = max(measured) if measured else None
        lc = llama_cpp.get(name)
        table.append((name, tg, roof, best, tg / best if tg and best else None, lc, tg / lc if tg and lc else None))
        json.dump(peer, open(os.path.join(a.out, "hf-peer.json"), "w"), indent=1)
    for name in MODELS:
        path = os.path.join(a.models_dir, name)
        if not os.path.exists(os.path.join(path, "config.json")):
            continue
        try:
            lp = logits_parity.hf_parity(a.winnow, path, env=env)
            json.dump(lp, open(os.path.join(a.out, "logits-parity-%s.json" % name), "w"), indent=1)
            print("%s logits vs HF float32 (max rel / argmax mismatches): winnow prefill %.3g / %d, decode %.3g / %d; HF bf16 %.3g / %d" % (
                name, lp["winnow_prefill"]["max_rel"], lp["winnow_prefill"]["argmax_mismatches"], lp["winnow_decode"]["max_rel"],
                lp["winnow_decode"]["argmax_mismatches"], lp["hf_bf16_vs_hf_f32"]["max_rel"], lp["hf_bf16_vs_hf_f32"]["argmax_mismatches"]), flush=True)
        except (Exception, SystemExit) as e:  # a failed proof is reported, and the next model still runs
            print("%s logits parity failed: %s" % (name, e), flush=True)
    fmt = "%-26s %12s %10s %14s %8s %15s %8s"
    print(fmt % ("model", "winnow tg128", "% roofline", "HF best tg128", "ratio", "llama.cpp tg128", "ratio"))
    f1 = lambda v: "%.1f" % v if v else "-"
    fx = lambda v: "%.2fx" % v if v else "-"
    for name, tg, roof, best, ratio, lc, lc_ratio in table:
        print(fmt % (name, f1(tg), "%.0f%%" % (100 * roof) if roof else "-", f1(best), fx(ratio), f1(lc), fx(lc_ratio)))
    # last, so that under run.sh's cap they cannot cost the timings, the peers or the logits proof above: prefill's A/B
    for name in MODELS:
        path = os.path.join(a.models_dir, name)
        if os.path.exists(os.path.join(path, "config.json")):
            variant_bench(a.winnow, path, name, env, a.out, "sgemm-prefill", "pp512", {"WINNOW_CUDA_SPLIT_PRODUCTS": "0"}, "on the fp32 sgemm")
            variant_bench(a.winnow, path, name, env, a.out, "untiled-attention", "pp512", {"WINNOW_CUDA_TILED_ATTENTION": "0"},
                          "with a block per attention row")


if __name__ == "__main__":
    main()
