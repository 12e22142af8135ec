#!/usr/bin/env python3
"""Greedy generation on the GPU against the CPU reference, token for token: each prompt of a generation_prompts.txt
file (lines 'plain<TAB>text' or 'chat<TAB>text') through `winnow generate --json --ignore-eos` with --device cpu and
--device cuda. Writes the per-prompt ids and the first divergence (if any) as JSON; prints one summary line last.
A divergence is expected only at a near-tie of the top two logits (the two devices sum in different orders)."""
import argparse
import json
import os
import subprocess
import sys


def generate(a, mode, text, device):
    cmd = [a.winnow, "generate", "-m", a.model, "-p", text, "-n", str(a.tokens), "--temp", "0", "--ignore-eos", "--json", "--device", device]
    if mode == "chat":
        cmd.append("--chat")
    env = dict(os.environ, LD_LIBRARY_PATH=a.libs)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    if r.returncode != 0:
        sys.exit("greedy_parity: %s failed: %s" % (" ".join(cmd), r.stderr.strip()))
    return json.loads(r.stdout)["output_ids"]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--winnow", required=True)
    ap.add_argument("--libs", default="")
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rows, same = [], 0
    for raw in open(a.prompts, encoding="utf-8"):
        raw = raw.rstrip("\n")
        if not raw:
            continue
        mode, text = raw.split("\t", 1)
        cpu, gpu = generate(a, mode, text, "cpu"), generate(a, mode, text, "cuda")
        first = next((i for i, (x, y) in enumerate(zip(cpu, gpu)) if x != y), None)
        same += cpu == gpu
        rows.append({"mode": mode, "prompt": text, "cpu": cpu, "cuda": gpu, "first_divergence": first})
        print("%-5s %-50s %s" % (mode, text[:50], "identical" if cpu == gpu else "diverges at token %s" % first))
    json.dump({"prompts": len(rows), "identical": same, "rows": rows}, open(a.out, "w"), indent=1)
    print("greedy cuda vs cpu: %d/%d prompts identical over %d tokens" % (same, len(rows), a.tokens))


if __name__ == "__main__":
    main()
