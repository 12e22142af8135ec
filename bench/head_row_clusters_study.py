#!/usr/bin/env python3
"""How much of a column sample's variance do cluster-centred rows remove? (issue 14, FaithfulOptions::row_clusters)

An idealised probe beside bench/head_unit_survivors_study.py: for queries collected by `winnow bench head --cache
FILE` (and the basis states in FILE.pca), in the PCA basis, with the first PREFIX columns of each query exact, the
rows a_i are replaced by their residuals a_i - c_k(i) from k-means with k clusters (k = 0: the rows themselves; the
centroid logits are exact). Columns past the prefix are sampled with replacement, probability proportional to
w_j |y_j| (w: the sampled matrix's column L1 norms). With the Hansen-Hurwitz variance known exactly, printed per k: the
residuals' share of the rows' energy, the median one-draw variance over all arms and over each query's 50 best arms,
and the share of arms surviving one round at 64 products per arm (mu_i + 2 sd_i >= mu_best - 2 sd_best), over every
16th test query. Last, the locality a masked stream would see: the share of 8-arm vectors of the column-major layout
that hold a survivor, with the arms in the model's order and with them sorted by cluster (survivors of a round share
clusters, since the centroid logit is a large part of each logit).

usage: bench/head_row_clusters_study.py MODEL.gguf CACHE [--prefix 16] [--tune 800] [--clusters 0,1,64,256]
"""
import numpy as np

from head_unit_survivors_study import pca_head, probe_arguments


def kmeans(X, k, rng, iterations=8):
    """Lloyd's k-means from k rows drawn at random (the probe's; winnow seeds with k-means++)."""
    C = X[rng.choice(len(X), k, replace=False)].copy()
    xx = (X * X).sum(1)
    for _ in range(iterations):
        label = np.concatenate([(xx[s:s + 8192, None] - 2 * X[s:s + 8192] @ C.T + (C * C).sum(1)[None]).argmin(1)
                                for s in range(0, len(X), 8192)])
        for c in range(k):
            members = label == c
            if members.any():
                C[c] = X[members].mean(0)
    return C, label


def one_draw_variances(AR, M, R, test, prefix, every=16):
    """For every `every`-th test query y = R^T x: the exact logits A R y and each arm's one-draw Hansen-Hurwitz variance
    when the columns of M past the first `prefix` are drawn with probability proportional to w_j |y_j| (w: M's column
    L1 norms). Yields (logit, variance) pairs."""
    w = np.abs(M).sum(0)
    for q in range(0, len(test), every):
        y = R.T @ test[q]
        prod = M[:, prefix:] * y[prefix:]
        p = w[prefix:] * np.abs(y[prefix:])
        p /= p.sum()
        yield AR @ y, np.maximum((prod ** 2 / p).sum(1) - prod.sum(1) ** 2, 0)


def main():
    ap = probe_arguments(__doc__, 800)
    ap.add_argument("--clusters", default="0,1,64,256")
    a = ap.parse_args()
    A, R, test = pca_head(a.model, a.cache, a.tune)
    AR = (A @ R).astype(np.float32)
    rng = np.random.default_rng(0)
    print("| k | residual energy | median arm variance | top-50 variance | survivors at 64, median | vectors touched, model order | sorted by cluster |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for k in (int(v) for v in a.clusters.split(",")):
        if k == 0:
            M = AR
            label = np.zeros(len(AR), dtype=np.int64)
        else:
            C, label = kmeans(AR, k, rng)
            M = (AR - C[label]).astype(np.float32)
        arm_var, top_var, survivors, touched, touched_sorted = [], [], [], [], []
        position = np.empty(len(AR), dtype=np.int64)
        position[np.argsort(label, kind="stable")] = np.arange(len(AR))
        vectors = (len(AR) + 7) // 8
        for logit, one in one_draw_variances(AR, M, R, test, a.prefix):
            best = logit.argmax()
            sd = np.sqrt(one / 64)
            arm_var.append(np.median(one))
            top_var.append(one[np.argsort(-logit)[:50]].mean())
            alive = logit + 2 * sd >= logit[best] - 2 * sd[best]
            survivors.append(np.mean(alive))
            touched.append(np.unique(np.nonzero(alive)[0] // 8).size / vectors)
            touched_sorted.append(np.unique(position[alive] // 8).size / vectors)
        print("| %d | %.3f | %.0f | %.0f | %.1f%% | %.1f%% | %.1f%% |" % (k, (M ** 2).sum() / (AR ** 2).sum(), np.median(arm_var), np.median(top_var),
                                                                100 * np.median(survivors), 100 * np.median(touched), 100 * np.median(touched_sorted)))


if __name__ == "__main__":
    main()
