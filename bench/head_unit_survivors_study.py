#!/usr/bin/env python3
"""How many arms survive one elimination round, by sampling unit, in the PCA basis with a fixed exact prefix?

An idealised probe of issue 14's wall-clock question (bench/reports/adaptive-head-rotation-smollm2.md, last section):
the fast head pays for the arms that survive its warm-up, and a unit of several contiguous columns could be scored by
the exact head's int8 dot-product kernel (about 2.7x cheaper per element than the Des Raj column stream) but carries
more variance per product. For queries collected by `winnow bench head --cache FILE` (and the basis states in
FILE.pca), in the basis of the states' principal axes: the first PREFIX axes are summed exactly, the rest is sampled
with replacement in units of 1, 8 or 32 contiguous axes, probability proportional to sum_{j in unit} w_j |y_j| (w =
column L1 norms of A R), BUDGET products per arm (BUDGET / unit draws). With the Hansen-Hurwitz variance known exactly
(no estimation noise, no fudge factor), an arm survives when mu_i + 2 sd_i >= mu_best - 2 sd_best. Reported: the
median and mean share of the 49,152 arms surviving, over every 16th test query.

usage: bench/head_unit_survivors_study.py MODEL.gguf CACHE [--prefix 16]
"""
import argparse

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def head_matrix(path):
    tensors = {t.name: t for t in GGUFReader(path).tensors}
    t = tensors.get("output.weight", tensors["token_embd.weight"])
    return dequantize(t.data, t.tensor_type).reshape(-1, int(t.shape[0])).astype(np.float32)


def states(path, d):
    b = open(path, "rb").read()
    return np.frombuffer(b[b.index(b"\n") + 1:], dtype=np.float32).reshape(-1, d)


def pca_head(model, cache, tune):
    """The head A, the principal axes R of the basis states in CACHE.pca (largest energy first) and the test queries
    of CACHE (those after the first `tune`): the inputs of every probe in the PCA basis."""
    A = head_matrix(model)
    d = A.shape[1]
    test = states(cache, d)[tune:]
    basis = states(cache + ".pca", d)
    _, V = np.linalg.eigh(basis.T @ basis / len(basis))
    return A, V[:, ::-1], test


def probe_arguments(doc, tune):
    """The arguments every probe of cached states takes: MODEL CACHE [--prefix] [--tune]."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("cache")
    ap.add_argument("--prefix", type=int, default=16)
    ap.add_argument("--tune", type=int, default=tune, help="calibration queries at the front of the cache (skipped)")
    return ap


def main():
    a = probe_arguments(__doc__, 200).parse_args()
    A, R, test = pca_head(a.model, a.cache, a.tune)
    AR = (A @ R).astype(np.float32)
    w = np.abs(AR).sum(0)
    out = {}
    for q in range(0, len(test), 16):
        y = R.T @ test[q]
        prod = AR * y
        logit = prod.sum(1)
        top = logit.argmax()
        for unit in (1, 8, 32):
            tail = prod[:, a.prefix:]
            units = tail.shape[1] // unit
            yu = tail[:, :units * unit].reshape(len(A), units, unit).sum(2)
            size = (w[a.prefix:a.prefix + units * unit] * np.abs(y[a.prefix:a.prefix + units * unit])).reshape(units, unit).sum(1)
            p = size / size.sum()
            one_draw = np.maximum((yu ** 2 / p).sum(1) - yu.sum(1) ** 2, 0)
            for budget in (32, 64, 128):
                sd = np.sqrt(one_draw / max(1, budget // unit))
                out.setdefault((unit, budget), []).append(np.mean(logit + 2 * sd >= logit[top] - 2 * sd[top]))
    print("| unit (columns) | products per arm past the prefix | survivors, median | survivors, mean |")
    print("| ---: | ---: | ---: | ---: |")
    for (unit, budget), v in sorted(out.items()):
        print("| %d | %d | %.1f%% | %.1f%% |" % (unit, budget, 100 * np.median(v), 100 * np.mean(v)))


if __name__ == "__main__":
    main()
