#!/usr/bin/env python3
"""Which estimator, at which sampling granularity? The AdaptiveSoftmax estimates on real SmolLM2 hidden states.

For queries collected by `winnow bench head --cache FILE` (final-norm hidden states), this script estimates every
logit <A_i, x> from the first T = 0.1 d' sampled units of one Gumbel-top-k order over the units' weights
sum_{j in unit} w_j |x_j| (w = column L1 norms), exactly as the warm-up does, and compares:
  - units: single columns (the paper) or tiles of 2 / 4 / 8 / 32 adjacent columns (one Q8_0 block is 32);
  - estimators: Horvitz-Thompson with Gumbel-threshold inclusion probabilities (the reference; its weights change
    with T, so every prefix is re-read) and Des Raj's ordered estimator (incremental: three running sums per arm).
Reported per (unit, estimator): the mean squared error of the logit estimates, the mean estimated variance (a good
variance estimate has ratio ~1), and how often the error exceeds 2 estimated standard deviations (~4.6% if Gaussian).
Computed in float64 on the head's dequantized values, over the 3000 largest logits of each query (the arms the
elimination has to resolve) and over all arms.

usage: bench/head_estimator_study.py --model MODEL.gguf --queries CACHE [--count 30] [--out REPORT.md]
"""
import argparse

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def head_matrix(path):
    r = GGUFReader(path)
    tensors = {t.name: t for t in r.tensors}
    t = tensors.get("output.weight", tensors["token_embd.weight"])
    d = int(t.shape[0])
    return dequantize(t.data, t.tensor_type).reshape(-1, d).astype(np.float64), t.tensor_type.name


def read_queries(path, d):
    with open(path, "rb") as f:
        f.readline()  # the cache key
        return np.frombuffer(f.read(), dtype=np.float32).reshape(-1, d).astype(np.float64)


def estimate(P, s, width, T_cols, rng, estimator):
    """P: products A_ij x_j [arms, d]; s: column weights. Returns (estimates, estimated variances)."""
    d = P.shape[1]
    nt = d // width
    T = max(2, T_cols // width)
    st = s[: nt * width].reshape(nt, width).sum(1)
    keep = st > 0
    idx = np.flatnonzero(keep)
    lp = np.log(st[idx] / st[idx].sum())
    key = lp - np.log(-np.log(rng.random(len(idx))))
    order = np.argsort(-key)
    Y = P[:, : nt * width].reshape(P.shape[0], nt, width).sum(2)[:, idx[order[:T]]]
    if estimator == "horvitz-thompson":
        tau = key[order[T]]
        rho = -np.expm1(-np.exp(lp[order[:T]] - tau))
        return (Y / rho).sum(1), (Y**2 * (1 - rho) / rho**2).sum(1)
    p = np.exp(lp[order[:T]])
    remaining = 1 - np.concatenate([[0.0], np.cumsum(p)[:-1]])
    known = np.concatenate([np.zeros((Y.shape[0], 1)), np.cumsum(Y, 1)[:, :-1]], 1)
    Z = known + Y * (remaining / p)
    mean = Z.mean(1)
    return mean, ((Z - mean[:, None]) ** 2).sum(1) / (T * (T - 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--queries", required=True, help="hidden-state cache written by `winnow bench head --cache`")
    ap.add_argument("--count", type=int, default=30, help="queries to use (from the 201st on: not the tuning set)")
    ap.add_argument("--top", type=int, default=3000)
    ap.add_argument("--out", help="also write the table to this Markdown file")
    a = ap.parse_args()
    A, head_type = head_matrix(a.model)
    n, d = A.shape
    Q = read_queries(a.queries, d)[200 : 200 + a.count]
    w = np.abs(A).sum(0)
    T_cols = int(0.1 * d)
    rng = np.random.default_rng(42)
    rows = []
    for width in (1, 2, 4, 8, 32):
        for est in ("horvitz-thompson", "des-raj"):
            stats = {"top": [], "all": []}
            for x in Q:
                mu = A @ x
                s = w * np.abs(x)
                e, v = estimate(A * x, s, width, T_cols, rng, est)
                for name, sel in (("top", np.argsort(-mu)[: a.top]), ("all", slice(None))):
                    err2 = (e[sel] - mu[sel]) ** 2
                    stats[name].append((err2.mean(), v[sel].mean(), np.mean(err2 > 4 * np.maximum(v[sel], 1e-30))))
            top, al = np.mean(stats["top"], 0), np.mean(stats["all"], 0)
            rows.append((width, est, top, al))
    lines = ["# Estimators at the warm-up size on SmolLM2-135M hidden states", "",
             "`%s` (head %s, n = %d, d = %d); %d held-out queries from `%s`; T = %d columns (0.1 d'), one Gumbel order per query "
             "and unit size; float64 on the dequantized head." % (a.model.split("/")[-1], head_type, n, d, len(Q), a.queries, T_cols), "",
             "| unit | estimator | MSE (top %d) | est. var / MSE (top) | P(err > 2 sd) (top) | MSE (all) | est. var / MSE (all) | P(err > 2 sd) (all) |" % a.top,
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for width, est, top, al in rows:
        unit = "column" if width == 1 else "tile of %d columns" % width
        lines.append("| %s | %s | %.2f | %.2f | %.3f | %.3f | %.2f | %.3f |" % (unit, est, top[0], top[1] / top[0], top[2], al[0], al[1] / al[0], al[2]))
    lines += ["", "Command: `%s`" % " ".join(["bench/head_estimator_study.py", "--model", a.model, "--queries", a.queries, "--count", str(a.count)]), ""]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        open(a.out, "w").write(text)


if __name__ == "__main__":
    main()
