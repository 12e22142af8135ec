#!/usr/bin/env python3
"""Plots issue 14's outcome table (gain and success vs delta per head) from bench/reports/adaptive-head-outcome-smollm2.json.

usage: bench/adaptive_head_outcome_plot.py [IN.json] [OUT.png]   (defaults: the report's JSON and PNG beside it)
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "reports", "adaptive-head-outcome-smollm2.json")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "reports", "adaptive-head-outcome-smollm2.png")
    rows = json.load(open(src))["rows"]
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for r in rows:
        d = [p["delta"] for p in r["points"]]
        style = "s--" if r.get("paper") else "o-"
        ax[0].plot(d, [p["gain"] for p in r["points"]], style, label=r["head"])
        ax[1].plot(d, [100 * p["success"] for p in r["points"]], style, label=r["head"])
    deltas = sorted({p["delta"] for r in rows for p in r["points"]})
    ax[0].axhline(7, color="gray", ls=":", label="target: 7x at delta 0.01")
    ax[1].plot(deltas, [100 * (1 - x) for x in deltas], ":", color="gray", label="1 - delta")
    ax[0].set(xlabel="delta", ylabel="sample gain (x)", title="gain (n d / samples)")
    ax[1].set(xlabel="delta", ylabel="success (%)", title="success on 800 held-out windows")
    for a in ax:
        a.grid(alpha=0.3)
        a.legend(fontsize=7)
    fig.suptitle("AdaptiveSoftmax on SmolLM2-135M Q4_1 (issue 14's outcome)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print("wrote", out)


if __name__ == "__main__":
    main()
