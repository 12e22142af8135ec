#!/usr/bin/env python3
"""Would a product-quantised head, as the exact part, leave column samples that separate the arms early? (issue 14)

An idealised probe beside bench/head_row_clusters_study.py, whose cluster-centred rows are the one-subspace case of
this: each row a_i of the head in the PCA basis is split into its product-quantisation reconstruction q_i (the rows cut
into M subspaces of d / M contiguous axes, each coded by the nearest of 2^bits k-means centroids of that subspace) and
a residual r_i = a_i - q_i. Per query, <q_i, y> is exact from M table lookups per arm (tables of 2^bits dot products
per subspace), and only the residual's columns past the first PREFIX axes are sampled, with replacement, probability
proportional to w_j |y_j| (w: the residuals' column L1 norms). With the Hansen-Hurwitz variance known exactly, printed
per configuration: the residuals' share of the rows' energy, the median one-draw variance over all arms and over each
query's 50 best arms, and the share of arms surviving one round at 32 and 64 products per arm (mu_i + 2 sd_i >=
mu_best - 2 sd_best), median and mean over every 16th test query. The lookups per arm (M) are the exact part's cost,
to set beside the d' = 576 products of an exact row.

usage: bench/head_pq_residual_study.py MODEL.gguf CACHE [--prefix 16] [--tune 800] [--configs 1x6,36x8,72x8,144x4]
  (a config is MxBITS; 1x6 is 64 cluster-centred rows)
"""
import numpy as np

from head_row_clusters_study import kmeans, one_draw_variances
from head_unit_survivors_study import pca_head, probe_arguments


def pq_reconstruction(X, subspaces, bits, rng):
    """X's rows, each subspace replaced by its nearest k-means centroid (2^bits per subspace)."""
    edges = np.linspace(0, X.shape[1], subspaces + 1).astype(int)
    Q = np.empty_like(X)
    for s in range(subspaces):
        part = np.ascontiguousarray(X[:, edges[s]:edges[s + 1]])
        C, label = kmeans(part, 2 ** bits, rng, iterations=12)
        Q[:, edges[s]:edges[s + 1]] = C[label]
    return Q


def main():
    ap = probe_arguments(__doc__, 800)
    ap.add_argument("--configs", default="0x0,1x6,36x8,72x8,144x4")
    a = ap.parse_args()
    A, R, test = pca_head(a.model, a.cache, a.tune)
    AR = (A @ R).astype(np.float32)
    rng = np.random.default_rng(0)
    print("| subspaces x bits | lookups per arm | residual energy | median arm variance | top-50 variance | "
          "survivors at 32, median / mean | survivors at 64, median / mean |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for config in a.configs.split(","):
        subspaces, bits = (int(v) for v in config.split("x"))
        M = AR if subspaces == 0 else (AR - pq_reconstruction(AR, subspaces, bits, rng)).astype(np.float32)
        arm_var, top_var, alive32, alive64 = [], [], [], []
        for logit, one in one_draw_variances(AR, M, R, test, a.prefix):
            best = logit.argmax()
            arm_var.append(np.median(one))
            top_var.append(one[np.argsort(-logit)[:50]].mean())
            for budget, out in ((32, alive32), (64, alive64)):
                sd = np.sqrt(one / budget)
                out.append(np.mean(logit + 2 * sd >= logit[best] - 2 * sd[best]))
        print("| %s | %d | %.3f | %.0f | %.0f | %.1f%% / %.1f%% | %.1f%% / %.1f%% |" % (
            "rows" if subspaces == 0 else config, subspaces, (M ** 2).sum() / (AR ** 2).sum(), np.median(arm_var),
            np.median(top_var), 100 * np.median(alive32), 100 * np.mean(alive32), 100 * np.median(alive64),
            100 * np.mean(alive64)), flush=True)


if __name__ == "__main__":
    main()
