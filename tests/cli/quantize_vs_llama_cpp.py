#!/usr/bin/env python3
"""`winnow quantize` against llama.cpp's own quantizer (llama_model_quantize through llama-cpp-python) on the same
input and preset.

usage: quantize_vs_llama_cpp.py --winnow BIN --model IN.gguf --presets q4_k_m,q6_k,... --workdir DIR
                                [--allow-requantize] [--max-error-ratio 1.002] [--max-tensor-error-ratio 1.02]
                                [--max-kl-ratio 1.5] [--check-winnow-logits [--winnow-logits-max-rel 1e-3]] [--json OUT]
                                [--skip-if-missing]

Per preset, both files must hold:
  - the same tensors with the same shapes and the same type each (llama.cpp's per-tensor rules: Q6_K output, the
    _M presets' extra bits for half of attn_v and ffn_down, the fallbacks for rows that K-quant blocks do not fit),
    and the same general.file_type;
  - weights as close to the input's: the squared error of the decoded weights (gguf-py decodes both files, and the
    input) summed over the encoded tensors within --max-error-ratio of llama.cpp's, and within
    --max-tensor-error-ratio on each tensor;
  - a model llama.cpp runs: llama.cpp's logits on winnow's file against its logits on the input (mean KL over the
    rows of a fixed id sequence) within --max-kl-ratio of its logits on its own file against the input (+1e-6).
--check-winnow-logits (an all-F32 input only): winnow's logits on its own file, prefill and decode steps, within 1e-3
(--winnow-logits-max-rel) of the largest logit of llama.cpp's on that file's weights decoded to F32 by gguf-py (no
8-bit activations there).
It prints one line per preset and exits 1 when a check fails. --skip-if-missing: a missing model exits 77 (ctest's
skip) unless WINNOW_REQUIRE_MODELS=1.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench", "device"))

GGML_TYPE_F32 = 0


def tensors(path):
    import gguf
    r = gguf.GGUFReader(path)
    file_type = r.fields["general.file_type"].parts[-1][0] if "general.file_type" in r.fields else None
    return r, {t.name: t for t in r.tensors}, file_type


def decoded(t):
    import gguf
    return np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float64).reshape(-1)


def llama_logits(model, ids, threads=2):
    import llama_cpp
    from pinned_llama import require_pinned_build
    require_pinned_build("quantize_vs_llama_cpp")
    llm = llama_cpp.Llama(model_path=model, n_ctx=64, n_batch=64, n_ubatch=64, n_threads=threads, n_threads_batch=threads, logits_all=True,
                          type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32, flash_attn=False, verbose=False, seed=0)
    llm.eval(ids)
    out = np.array(llm.scores[: len(ids)], dtype=np.float64)
    del llm
    return out


# Every preset compares against the same input: it is read (gguf-py parses a 49K-token vocabulary in Python: most of
# a SmolLM2 preset's time went to five such reads), decoded and run by llama.cpp once.
_input_reads = {}
_input_decoded = {}
_input_logits = {}


def input_tensors(path):
    if path not in _input_reads:
        _input_reads[path] = tensors(path)
    return _input_reads[path]


def decoded_input(path, name, t):
    key = (path, name)
    if key not in _input_decoded:
        _input_decoded[key] = decoded(t)
    return _input_decoded[key]


def input_logits(path, ids):
    key = (path, tuple(ids))
    if key not in _input_logits:
        _input_logits[key] = llama_logits(path, ids)
    return _input_logits[key]


def mean_kl(ref, other):
    def log_softmax(x):
        x = x - x.max(axis=1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    lp, lq = log_softmax(ref), log_softmax(other)
    return float((np.exp(lp) * (lp - lq)).sum(axis=1).mean())


def compare(a, preset, workdir):
    from llama_quantize import quantize
    ours_path = os.path.join(workdir, "winnow-%s.gguf" % preset)
    theirs_path = os.path.join(workdir, "llama-%s.gguf" % preset)
    cmd = [a.winnow, "quantize", a.model, ours_path, preset, "--quiet"] + (["--allow-requantize"] if a.allow_requantize else [])
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    quantize(a.model, theirs_path, preset, a.allow_requantize, count_types=False)  # its types are read below
    _, inp, _ = input_tensors(a.model)
    _, ours, ours_ft = tensors(ours_path)
    _, theirs, theirs_ft = tensors(theirs_path)
    problems = []
    if set(ours) != set(theirs):
        problems.append("tensor names differ: only winnow %s, only llama.cpp %s" % (sorted(set(ours) - set(theirs))[:5], sorted(set(theirs) - set(ours))[:5]))
    if ours_ft != theirs_ft:
        problems.append("general.file_type %s, llama.cpp %s" % (ours_ft, theirs_ft))
    err_ours = err_theirs = 0.0
    worst = (0.0, "")
    identical = encoded = 0
    types = {}
    for name in sorted(set(ours) & set(theirs)):
        o, t, i = ours[name], theirs[name], inp[name]
        if o.tensor_type != t.tensor_type or list(o.shape) != list(t.shape):
            problems.append("%s: %s %s, llama.cpp %s %s" % (name, o.tensor_type.name, list(o.shape), t.tensor_type.name, list(t.shape)))
            continue
        types[o.tensor_type.name] = types.get(o.tensor_type.name, 0) + 1
        if o.tensor_type == i.tensor_type:
            continue  # copied as stored: nothing to compare but the type
        encoded += 1
        same = bytes(o.data.tobytes()) == bytes(t.data.tobytes())
        identical += same
        x = decoded_input(a.model, name, i)
        # the same bytes decode to the same weights: one decode serves both (the SmolLM2 run spent most of its time here)
        eo = float(((decoded(o) - x) ** 2).sum())
        et = eo if same else float(((decoded(t) - x) ** 2).sum())
        err_ours += eo
        err_theirs += et
        floor = 1e-12 * float((x ** 2).sum())
        ratio = (eo + floor) / (et + floor) if et + floor > 0 else 1.0
        worst = max(worst, (ratio, name))
        if eo > a.max_tensor_error_ratio * et + floor:
            problems.append("%s (%s): squared error %.4g, llama.cpp %.4g (ratio %.3f > %.3f)" % (name, o.tensor_type.name, eo, et, eo / et, a.max_tensor_error_ratio))
    total_ratio = err_ours / err_theirs if err_theirs > 0 else 1.0
    if err_ours > a.max_error_ratio * err_theirs:
        problems.append("squared error over the encoded tensors %.4g, llama.cpp %.4g (ratio %.4f > %.3f)" % (err_ours, err_theirs, total_ratio, a.max_error_ratio))

    vocab = len(input_tensors(a.model)[0].fields["tokenizer.ggml.tokens"].data)
    ids = [int(v) for v in np.random.default_rng(3).integers(1, vocab, 24)]
    ref = input_logits(a.model, ids)
    kl_ours, kl_theirs = mean_kl(ref, llama_logits(ours_path, ids)), mean_kl(ref, llama_logits(theirs_path, ids))
    if not kl_ours <= a.max_kl_ratio * kl_theirs + 1e-6:
        problems.append("llama.cpp on winnow's file: mean KL to the input's logits %.3g, on its own file %.3g (ratio > %.2f)" % (kl_ours, kl_theirs, a.max_kl_ratio))
    winnow_rel = None
    if a.check_winnow_logits:
        from make_tiny_models import write_decoded
        from logits_parity import winnow_logits
        decoded_path = os.path.join(workdir, "winnow-%s-decoded.gguf" % preset)
        write_decoded(ours_path, a.model, decoded_path)
        ref_dec = llama_logits(decoded_path, ids)
        winnow_rel = 0.0
        for step in ("prefill", "decode"):
            mine = winnow_logits(a.winnow, ours_path, ids, step, "cpu", workdir).astype(np.float64)
            rel = float((np.abs(mine - ref_dec).max(axis=1) / np.abs(ref_dec).max(axis=1)).max())
            winnow_rel = max(winnow_rel, rel)
        if not winnow_rel <= a.winnow_logits_max_rel:
            problems.append("winnow's logits on its own file differ from llama.cpp's on the decoded weights by %.3g of the largest (> %g)" %
                            (winnow_rel, a.winnow_logits_max_rel))
    row = {"preset": preset, "types": types, "encoded_tensors": encoded, "identical_tensors": identical, "error_ratio": total_ratio,
           "worst_tensor_ratio": worst[0], "worst_tensor": worst[1], "kl_winnow_file": kl_ours, "kl_llama_file": kl_theirs, "winnow_logits_rel": winnow_rel, "problems": problems}
    print("%s: %s; %d tensors encoded (%d byte-identical to llama.cpp's); squared error / llama.cpp's %.4f (worst tensor %.3f, %s); "
          "llama.cpp's mean KL to the input: %.3g on winnow's file, %.3g on its own%s%s" %
          (preset, ", ".join("%s x%d" % kv for kv in sorted(types.items())), encoded, identical, total_ratio, worst[0], worst[1], kl_ours, kl_theirs,
           "" if winnow_rel is None else "; winnow on its file vs llama.cpp on it decoded: %.2g" % winnow_rel,
           "" if not problems else "\n  FAIL " + "\n  FAIL ".join(problems)))
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--winnow", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--presets", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--allow-requantize", action="store_true")
    ap.add_argument("--max-error-ratio", type=float, default=1.002)
    ap.add_argument("--max-tensor-error-ratio", type=float, default=1.02)
    ap.add_argument("--max-kl-ratio", type=float, default=1.5)
    ap.add_argument("--check-winnow-logits", action="store_true")
    ap.add_argument("--winnow-logits-max-rel", type=float, default=1e-3)
    ap.add_argument("--json")
    ap.add_argument("--skip-if-missing", action="store_true")
    a = ap.parse_args()
    from missing_input import check_input
    check_input("quantize_vs_llama_cpp", a.model, a.skip_if_missing)
    os.makedirs(a.workdir, exist_ok=True)
    rows = [compare(a, p, a.workdir) for p in a.presets.split(",")]
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump(rows, f, indent=1)
        os.replace(a.json + ".tmp", a.json)
    failed = [r["preset"] for r in rows if r["problems"]]
    if failed:
        sys.exit("quantize_vs_llama_cpp: %s differ from llama.cpp beyond the bounds" % ", ".join(failed))


if __name__ == "__main__":
    main()
