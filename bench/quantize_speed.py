#!/usr/bin/env python3
"""Time `winnow quantize` against llama.cpp's quantizer (llama_model_quantize through llama-cpp-python, in process) on
the same input, preset and thread count: median wall seconds of --reps runs each, interleaved, and the ratio.
Run it alone (two processes on 2 cores ruin each other's numbers).

usage: bench/quantize_speed.py --winnow BIN --model IN.gguf [--presets q4_k_m,q6_k,q8_0] [--threads 2] [--reps 5]
                               [--allow-requantize] [--workdir /tmp/winnow-quantize-speed] [--json OUT]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--winnow", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--presets", default="q4_k_m,q6_k,q8_0")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--allow-requantize", action="store_true")
    ap.add_argument("--workdir", default="/tmp/winnow-quantize-speed")
    ap.add_argument("--json")
    a = ap.parse_args()
    import llama_quantize
    os.makedirs(a.workdir, exist_ok=True)
    rows = []
    for preset in a.presets.split(","):
        ours, theirs = [], []
        for _ in range(a.reps):
            out = os.path.join(a.workdir, "winnow.gguf")
            cmd = [a.winnow, "quantize", a.model, out, preset, "--quiet", "-t", str(a.threads)] + (["--allow-requantize"] if a.allow_requantize else [])
            t = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            llama_quantize.quantize(a.model, os.path.join(a.workdir, "llama.gguf"), preset, a.allow_requantize, nthread=a.threads, count_types=False)
            theirs.append(time.perf_counter() - t)
        row = {"preset": preset, "threads": a.threads, "winnow_s": statistics.median(ours), "llama_cpp_s": statistics.median(theirs),
               "winnow_sd": statistics.stdev(ours) if len(ours) > 1 else 0.0, "llama_cpp_sd": statistics.stdev(theirs) if len(theirs) > 1 else 0.0}
        row["speedup"] = row["llama_cpp_s"] / row["winnow_s"]
        rows.append(row)
        print("%-7s winnow %.2f s (sd %.2f)  llama.cpp %.2f s (sd %.2f)  llama.cpp / winnow %.2fx" %
              (preset, row["winnow_s"], row["winnow_sd"], row["llama_cpp_s"], row["llama_cpp_sd"], row["speedup"]))
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump(rows, f, indent=1)
        os.replace(a.json + ".tmp", a.json)


if __name__ == "__main__":
    main()
