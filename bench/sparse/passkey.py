#!/usr/bin/env python3
"""Passkey retrieval, dense vs block-sparse attention: a five-digit key hidden at several depths of filler text, asked
for at the end (the test of Mohtashami & Jaggi's landmark-attention paper, as used for long-context LLMs).
Perplexity can hide lost long-range recall; this cannot: the key appears once, far from the question.

  bench/sparse/passkey.py --winnow build/src/winnow --pattern P.json [--select K] [--lengths 2048,4096,8192] [--trials 3]
                          [--out bench/reports/passkey.json]

Each case runs `winnow generate -f PROMPT -n 8 --json` (greedy) twice, dense and with --attention sparse, and counts
a success when the generated text contains the key. Prints a markdown table; --out also writes the rows as JSON.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "
INTRO = "There is important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you about the important information there.\n\n"
KEY = "The pass key is {k}. Remember it. {k} is the pass key. "
QUESTION = "\n\nWhat is the pass key? The pass key is"


def prompt(n_filler, depth, key):
    before = int(round(n_filler * depth))
    return INTRO + FILLER * before + KEY.format(k=key) + FILLER * (n_filler - before) + QUESTION


def generate(args, text, ctx, sparse):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        cmd = [args.winnow, "generate", "-f", path, "-n", "8", "--temp", "0", "--ctx", str(ctx), "--json"]
        if args.model:
            cmd += ["-m", args.model]
        if sparse:
            cmd += ["--attention", "sparse", "--sparse-pattern", args.pattern, "--sparse-select", str(args.select)]
            if args.select_block:
                cmd += ["--sparse-select-block", str(args.select_block)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"passkey: {' '.join(cmd)} failed: {r.stderr.strip()}")
        return json.loads(r.stdout)
    finally:
        os.unlink(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--winnow", default="build/src/winnow")
    ap.add_argument("--model", default="")
    ap.add_argument("--pattern", default="")
    ap.add_argument("--select", type=int, default=0, help="query-aware blocks per sparse row (winnow --sparse-select)")
    ap.add_argument("--select-block", type=int, default=0, help="tokens per query-aware block (winnow --sparse-select-block; 0: winnow's default)")
    ap.add_argument("--lengths", default="2048,4096,8192", help="context lengths (the prompt fills it but for 16 tokens)")
    ap.add_argument("--depths", default="0.1,0.5,0.9")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--modes", default="dense,sparse", help="which attention to run (the keys depend only on --seed, so runs of one mode can be merged)")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    modes = a.modes.split(",")
    if "sparse" in modes and not a.pattern:
        sys.exit("passkey: --pattern is required for sparse attention")
    rng = random.Random(a.seed)
    # tokens per filler sentence group, from the tokenizer itself (a prompt of 0 and 40 fillers)
    t0 = len(generate(a, prompt(0, 0.5, 12345), 2048, False)["prompt_ids"])
    t40 = len(generate(a, prompt(40, 0.5, 12345), 2048, False)["prompt_ids"])
    per = (t40 - t0) / 40
    rows = []
    print("| context | depth | " + " | ".join(modes) + " |")
    print("|---:|---:|" + "---:|" * len(modes))
    for ctx in map(int, a.lengths.split(",")):
        n_filler = int((ctx - 16 - t0) / per)
        for depth in map(float, a.depths.split(",")):
            ok = {m: 0 for m in modes}
            for _ in range(a.trials):
                key = rng.randint(10000, 99999)
                text = prompt(n_filler, depth, key)
                for mode in modes:
                    out = generate(a, text, ctx, mode == "sparse")
                    hit = str(key) in out["text"]
                    ok[mode] += hit
                    rows.append({"ctx": ctx, "prompt_tokens": len(out["prompt_ids"]), "depth": depth, "key": key, "attention": mode,
                                 "output": out["text"], "found": hit})
            print(f"| {ctx} | {depth:.0%} | " + " | ".join(f"{ok[m]}/{a.trials}" for m in modes) + " |", flush=True)
    if a.out:
        tmp = a.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"pattern": a.pattern, "select": a.select, "select_block": a.select_block, "trials": a.trials, "seed": a.seed, "rows": rows}, f, indent=1)
        os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
