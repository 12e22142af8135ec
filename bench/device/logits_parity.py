#!/usr/bin/env python3
"""Next-token logits of `winnow logits` against another engine's on the same weights and token ids.

usage:
  logits_parity.py oracle --winnow BIN --model M --ref REF.bin [--device cpu] [--libs LD_LIBRARY_PATH] [--steps prefill,decode]
                   [--max-rel R] [--max-abs A] [--max-argmax-mismatches N] [--json OUT] [--skip-if-missing]
      REF.bin: a WLGT file of tests/fixtures/llama_oracle.py (llama.cpp) or numpy_oracle.py (float64 numpy): its
      token sequences are run through winnow, every row compared; exit 1 when a bound is broken. --skip-if-missing:
      a missing model or reference exits 77 (ctest's skip) unless WINNOW_REQUIRE_MODELS=1, as the SmolLM2 oracles do.
  logits_parity.py hf --winnow BIN --model-dir D [--device cuda] [--tokens 64] [--seed 0] --json OUT
      On the GPU machine: D is a transformers checkpoint (the random bf16 models of hf_models_and_peer.py). HF runs it
      in float32 on the bf16 weights (an exact upcast, so the only difference is arithmetic) and in bf16 (HF's own
      drift, for scale); winnow runs the same random ids with --step prefill and --step decode.

Per row: max |ours - ref|, that over max |ref| ("rel", as tests/model/oracle_file.h's compare_row), whether the
argmax agrees (with the reference's top-1 - top-2 margin where it does not: a near tie), and KL(ref || ours) of the
softmaxes in float64. The summary is the worst row and the mean KL.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np


def read_wlgt(path):
    """[(ids, logits[n_tok][n_vocab])] of a WLGT v1 file (llama_oracle.py's format)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"WLGT":
        sys.exit("logits_parity: %s is not a WLGT file" % path)
    version, n_seq, n_vocab = struct.unpack_from("<III", data, 4)
    if version != 1:
        sys.exit("logits_parity: %s has WLGT version %d, not 1" % (path, version))
    off, seqs = 16, []
    for _ in range(n_seq):
        (n_tok,) = struct.unpack_from("<I", data, off)
        off += 4
        ids = np.frombuffer(data, "<i4", n_tok, off)
        off += 4 * n_tok
        logits = np.frombuffer(data, "<f4", n_tok * n_vocab, off).reshape(n_tok, n_vocab)
        off += 4 * n_tok * n_vocab
        seqs.append((ids.tolist(), logits))
    return seqs


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def compare(ours, ref):
    """The per-row differences of two [rows][n_vocab] arrays, summarised."""
    if ours.shape != ref.shape:
        sys.exit("logits_parity: shapes differ: ours %s, reference %s" % (ours.shape, ref.shape))
    ours64, ref64 = ours.astype(np.float64), ref.astype(np.float64)
    max_abs = np.abs(ours64 - ref64).max(axis=1)
    rel = max_abs / np.maximum(np.abs(ref64).max(axis=1), 1e-30)
    lp_ref, lp_ours = log_softmax(ref64), log_softmax(ours64)
    kl = (np.exp(lp_ref) * (lp_ref - lp_ours)).sum(axis=1)
    a_ours, a_ref = ours.argmax(axis=1), ref.argmax(axis=1)
    mismatched = np.nonzero(a_ours != a_ref)[0]
    top2 = np.sort(ref64, axis=1)[:, -2:]
    return {
        "rows": int(ours.shape[0]),
        "max_abs": float(max_abs.max()),
        "max_rel": float(rel.max()),
        "kl_mean": float(kl.mean()),
        "kl_max": float(kl.max()),
        "argmax_mismatches": int(len(mismatched)),
        "mismatch_ref_margins": [float(top2[r, 1] - top2[r, 0]) for r in mismatched],
    }


def merge(parts):
    """One summary of several compare() results (rows added, worst values kept, KL means weighted by rows)."""
    rows = sum(p["rows"] for p in parts)
    return {
        "rows": rows,
        "max_abs": max(p["max_abs"] for p in parts),
        "max_rel": max(p["max_rel"] for p in parts),
        "kl_mean": sum(p["kl_mean"] * p["rows"] for p in parts) / rows,
        "kl_max": max(p["kl_max"] for p in parts),
        "argmax_mismatches": sum(p["argmax_mismatches"] for p in parts),
        "mismatch_ref_margins": [m for p in parts for m in p["mismatch_ref_margins"]],
    }


def winnow_logits(binary, model, ids, step, device, workdir, env=None, dot="f32"):
    """winnow logits of `ids` as a [len(ids)][n_vocab] array (env: the process environment, e.g. the bundle's
    LD_LIBRARY_PATH on the GPU machine)."""
    ids_file, out = os.path.join(workdir, "ids.txt"), os.path.join(workdir, "logits-%s.npy" % step)
    with open(ids_file, "w") as f:
        f.write(" ".join(str(int(i)) for i in ids))
    cmd = [binary, "logits", "-m", model, "--ids-file", ids_file, "--out", out, "--step", step, "--device", device, "--dot", dot]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    except subprocess.TimeoutExpired:
        sys.exit("logits_parity: %s took over 60 s" % " ".join(cmd))
    if r.returncode != 0:
        sys.exit("logits_parity: %s failed (exit %d): %s" % (" ".join(cmd), r.returncode, r.stderr.strip()))
    logits = np.load(out)
    if logits.dtype != np.float32 or logits.shape[0] != len(ids):
        sys.exit("logits_parity: %s holds %s %s, not %d float32 rows" % (out, logits.dtype, logits.shape, len(ids)))
    return logits


def cmd_oracle(a):
    seqs = read_wlgt(a.ref)
    if not seqs:
        sys.exit("logits_parity: %s holds no sequences" % a.ref)
    report = {"model": a.model, "reference": a.ref, "device": a.device, "dot": a.dot, "steps": {}}
    env = dict(os.environ, LD_LIBRARY_PATH=a.libs) if a.libs else None
    with tempfile.TemporaryDirectory() as tmp:
        for step in a.steps.split(","):
            report["steps"][step] = merge([compare(winnow_logits(a.winnow, a.model, ids, step, a.device, tmp, env, a.dot), ref) for ids, ref in seqs])
    print(json.dumps(report, indent=2))
    print("; ".join("%s: %d rows, max rel %.3g, max abs %.3g, argmax mismatches %d" % (step, r["rows"], r["max_rel"], r["max_abs"], r["argmax_mismatches"])
                    for step, r in report["steps"].items()))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)
    broken = []
    for step, s in report["steps"].items():
        if a.max_rel is not None and s["max_rel"] > a.max_rel:
            broken.append("%s: max relative difference %.3g > %.3g" % (step, s["max_rel"], a.max_rel))
        if a.max_abs is not None and s["max_abs"] > a.max_abs:
            broken.append("%s: max absolute difference %.3g > %.3g" % (step, s["max_abs"], a.max_abs))
        if s["argmax_mismatches"] > a.max_argmax_mismatches:
            broken.append("%s: %d argmax mismatches > %d" % (step, s["argmax_mismatches"], a.max_argmax_mismatches))
    if broken:
        sys.exit("logits_parity: " + "; ".join(broken))


def hf_parity(binary, model_dir, device="cuda", tokens=64, seed=0, env=None):
    """winnow (prefill and decode) and HF bf16 against HF float32 on the same checkpoint and random ids."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    vocab = AutoConfig.from_pretrained(model_dir).vocab_size
    ids = np.random.default_rng(seed).integers(0, vocab, tokens).tolist()
    report = {"model": model_dir, "device": device, "tokens": tokens, "seed": seed, "reference": "HF transformers float32 on the bf16 weights"}
    refs = {}
    for dtype in (torch.float32, torch.bfloat16):
        m = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to("cuda" if torch.cuda.is_available() else "cpu").eval()
        with torch.no_grad():
            refs[dtype] = m(torch.tensor([ids], device=m.device)).logits[0].float().cpu().numpy()
        del m
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    report["hf_bf16_vs_hf_f32"] = compare(refs[torch.bfloat16], refs[torch.float32])
    with tempfile.TemporaryDirectory() as tmp:
        for step in ("prefill", "decode"):
            report["winnow_" + step] = compare(winnow_logits(binary, model_dir, ids, step, device, tmp, env), refs[torch.float32])
    return report


def cmd_hf(a):
    report = hf_parity(a.winnow, a.model_dir, a.device, a.tokens, a.seed, dict(os.environ, LD_LIBRARY_PATH=a.libs) if a.libs else None)
    print(json.dumps(report, indent=2))
    with open(a.json, "w") as f:
        json.dump(report, f, indent=2)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("oracle")
    o.add_argument("--winnow", required=True)
    o.add_argument("--model", required=True)
    o.add_argument("--ref", required=True)
    o.add_argument("--device", default="cpu")
    o.add_argument("--libs", help="LD_LIBRARY_PATH for winnow (the GPU machine's bundle), not for this script")
    o.add_argument("--steps", default="prefill,decode")
    o.add_argument("--dot", default="f32", choices=("f32", "q8", "auto"), help="winnow's dot mode (the CPU's): q8 rounds activations as llama.cpp does")
    o.add_argument("--max-rel", type=float)
    o.add_argument("--max-abs", type=float)
    o.add_argument("--max-argmax-mismatches", type=int, default=0)
    o.add_argument("--json")
    o.add_argument("--skip-if-missing", action="store_true")
    h = sub.add_parser("hf")
    h.add_argument("--winnow", required=True)
    h.add_argument("--model-dir", required=True)
    h.add_argument("--device", default="cuda")
    h.add_argument("--libs", help="LD_LIBRARY_PATH for winnow (the GPU machine's bundle), not for this script")
    h.add_argument("--tokens", type=int, default=64)
    h.add_argument("--seed", type=int, default=0)
    h.add_argument("--json", required=True)
    a = p.parse_args()
    for path in [a.winnow] + ([a.model, a.ref] if a.cmd == "oracle" else [a.model_dir]):
        if os.path.exists(path):
            continue
        if path != a.winnow and getattr(a, "skip_if_missing", False) and os.environ.get("WINNOW_REQUIRE_MODELS") != "1":
            print("logits_parity: skipped: %s not present (set WINNOW_REQUIRE_MODELS=1 to make this a failure)" % path)
            sys.exit(77)
        sys.exit("logits_parity: %s does not exist" % path)
    cmd_oracle(a) if a.cmd == "oracle" else cmd_hf(a)


if __name__ == "__main__":
    main()
