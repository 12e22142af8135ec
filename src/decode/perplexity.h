#pragma once
// Perplexity in the manner of llama.cpp's perplexity tool: the text's tokens are cut into chunks of n_ctx, each chunk
// is evaluated from an empty cache (its first token replaced by BOS when the model adds one), and the second half of
// each chunk is scored: the logits at position j predict token j + 1, for j from n_ctx / 2 to n_ctx - 2.
#include <cstdint>
#include <functional>
#include <vector>

#include "decode/forward.h"

namespace winnow {

struct PerplexityOptions {
    int n_ctx = 512;
    int max_chunks = 0; // 0: every whole chunk of the text
    int32_t bos = -1;   // >= 0: replaces each chunk's first token (llama.cpp does this when the model adds BOS)
    int batch = 256;    // tokens evaluated at once while scoring (bounds the logits held: batch x n_vocab floats)
};

struct PerplexityResult {
    int chunks = 0;
    int64_t scored = 0;           // predictions scored
    double nll = 0;               // mean negative log-likelihood (nats)
    double ppl = 0, ppl_sd = 0;   // exp(nll) and llama.cpp's uncertainty estimate
    std::vector<double> running;  // the estimate after each chunk
    double seconds = 0;
};

// `f` must hold at least opt.n_ctx positions. on_chunk(i, running ppl) reports progress (may be empty).
PerplexityResult perplexity(Forward& f, const std::vector<int32_t>& tokens, const PerplexityOptions& opt,
                            const std::function<void(int, double)>& on_chunk = {});

} // namespace winnow
