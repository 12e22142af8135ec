#!/usr/bin/env python3
"""llama.cpp's perplexity protocol through llama-cpp-python (the pinned AVX2 build), as the oracle for
`winnow perplexity`: tokens of the whole text (BOS added, special tokens not parsed), chunks of --ctx tokens, each
evaluated from an empty cache with its first token replaced by BOS (when the model adds BOS), and positions ctx/2 .. ctx-2 scored (the logits
at j predict token j + 1). Prints one JSON object: {"ppl": .., "nll": .., "chunks": .., "scored": ..}."""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
from pinned_llama import require_pinned_build  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import llama_cpp
    require_pinned_build("llama_perplexity_oracle")
    llm = llama_cpp.Llama(model_path=a.model, n_ctx=a.ctx, n_batch=a.ctx, n_ubatch=a.ctx, n_threads=a.threads, n_threads_batch=a.threads,
                          logits_all=True, type_k=0, type_v=0, flash_attn=False, verbose=False, seed=0)
    text = open(a.text, encoding="utf-8").read()
    tokens = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
    n_chunks = min(a.chunks, len(tokens) // a.ctx)
    if n_chunks < 1:
        sys.exit("llama_perplexity_oracle: the text is shorter than one chunk")
    first = a.ctx // 2
    add_bos = bool(llm._model.add_bos_token())
    nll, count = 0.0, 0
    for c in range(n_chunks):
        chunk = list(tokens[c * a.ctx:(c + 1) * a.ctx])
        if add_bos:  # llama.cpp replaces the chunk's first token only when the vocabulary adds BOS
            chunk[0] = llm.token_bos()
        llm.reset()
        llm.eval(chunk)
        logits = np.array(llm.scores[:a.ctx], dtype=np.float64)
        for j in range(first, a.ctx - 1):
            row = logits[j]
            mx = row.max()
            nll += mx + np.log(np.exp(row - mx).sum()) - row[chunk[j + 1]]
            count += 1
    print(json.dumps({"ppl": float(np.exp(nll / count)), "nll": nll / count, "chunks": n_chunks, "scored": count}))


if __name__ == "__main__":
    main()
