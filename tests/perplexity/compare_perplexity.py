#!/usr/bin/env python3
"""`winnow perplexity` against llama.cpp's protocol (llama_perplexity_oracle.py) on the same model, text and
chunking; fails unless the perplexities agree within --tol (relative) over the same number of predictions."""
import argparse
import json
import os
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--winnow", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--ctx", default="256")
    ap.add_argument("--chunks", default="4")
    ap.add_argument("--dot", default="f32")
    ap.add_argument("--tol", type=float, required=True)
    a = ap.parse_args()
    if not os.path.exists(a.model):
        if os.environ.get("WINNOW_REQUIRE_MODELS") == "1":
            sys.exit("compare_perplexity: missing model %s" % a.model)
        print("compare_perplexity: SKIPPED, %s not fetched" % a.model)
        return
    oracle = os.path.join(os.path.dirname(os.path.abspath(__file__)), "llama_perplexity_oracle.py")
    ref = json.loads(subprocess.run([sys.executable, oracle, "--model", a.model, "--text", a.text, "--ctx", a.ctx, "--chunks", a.chunks],
                                    capture_output=True, text=True, check=True).stdout)
    ours = json.loads(subprocess.run([a.winnow, "perplexity", "-m", a.model, "--text", a.text, "--ctx", a.ctx, "--chunks", a.chunks, "--dot", a.dot,
                                      "--json"], capture_output=True, text=True, check=True).stdout)
    rel = abs(ours["ppl"] - ref["ppl"]) / ref["ppl"]
    print("winnow %.6f (%s dots) vs llama.cpp %.6f over %d predictions: relative difference %.2e (tolerance %.1e)"
          % (ours["ppl"], a.dot, ref["ppl"], ours["scored"], rel, a.tol))
    if ours["scored"] != ref["scored"] or ours["scored"] < 100:
        sys.exit("scored %d predictions, llama.cpp %d" % (ours["scored"], ref["scored"]))
    if not rel <= a.tol:
        sys.exit("perplexity differs by %.3g relative" % rel)


if __name__ == "__main__":
    main()
