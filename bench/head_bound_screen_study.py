#!/usr/bin/env python3
"""Could a deterministic bound screen arms before any sampling? A probe for issue 14 (bench/reports/
adaptive-head-rotation-smollm2.md, last section).

In the PCA basis of the basis states (FILE.pca), sum each arm's first m axes exactly and bound the rest by
Cauchy-Schwarz: |a_tail . x_tail| <= ||a_tail|| ||x_tail|| (row tail norms precomputed, the query's tail norm exact).
An arm whose upper bound (prefix + bound) is below the winner's exact logit could be dropped with certainty, no delta
spent. Reported per m, over every 8th test query: the share of the 49,152 arms that survive such a screen (median,
mean), the query's tail share of its norm, the median bound, and the median gap between the winner and the logits.

usage: bench/head_bound_screen_study.py MODEL.gguf CACHE [--tune 200]
"""
import argparse
import sys

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from head_unit_survivors_study import pca_head  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("cache")
    ap.add_argument("--tune", type=int, default=200, help="calibration queries at the front of the cache (skipped)")
    a = ap.parse_args()
    A, R, test = pca_head(a.model, a.cache, a.tune)
    AR = (A @ R).astype(np.float64)
    tail_sq = np.cumsum((AR ** 2)[:, ::-1], axis=1)[:, ::-1]  # tail_sq[:, m] = ||a_i[m:]||^2
    rows = {}
    for q in range(0, len(test), 8):
        y = R.T @ test[q]
        logit = AR @ y
        best = logit.max()
        y_tail_sq = np.cumsum((y ** 2)[::-1])[::-1]
        prefix = np.cumsum(AR * y, axis=1)
        for m in (16, 32, 64, 128, 256):
            bound = np.sqrt(tail_sq[:, m]) * np.sqrt(y_tail_sq[m])
            survive = np.mean(prefix[:, m - 1] + bound >= best)
            rows.setdefault(m, []).append((survive, np.sqrt(y_tail_sq[m]) / np.linalg.norm(y), np.median(bound), best - np.median(logit)))
    print("| exact axes m | survivors, median | survivors, mean | query tail / norm | median bound | median gap to the winner |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for m, v in rows.items():
        v = np.array(v)
        print("| %d | %.1f%% | %.1f%% | %.3f | %.1f | %.1f |" % (m, 100 * np.median(v[:, 0]), 100 * v[:, 0].mean(), np.median(v[:, 1]),
                                                          np.median(v[:, 2]), np.median(v[:, 3])))


if __name__ == "__main__":
    main()
