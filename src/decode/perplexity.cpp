#include "decode/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "winnow/error.h"

namespace winnow {

PerplexityResult perplexity(Forward& f, const std::vector<int32_t>& tokens, const PerplexityOptions& opt,
                            const std::function<void(int, double)>& on_chunk) {
    const int n_ctx = opt.n_ctx;
    if (n_ctx < 4) throw Error(ErrorKind::invalid_argument, "perplexity: the context must be at least 4 tokens");
    if (n_ctx > f.n_ctx()) throw Error(ErrorKind::invalid_argument, "perplexity: context " + std::to_string(n_ctx) + " exceeds the session's " + std::to_string(f.n_ctx()));
    int n_chunks = static_cast<int>(tokens.size() / n_ctx);
    if (opt.max_chunks > 0) n_chunks = std::min(n_chunks, opt.max_chunks);
    if (n_chunks < 1)
        throw Error(ErrorKind::invalid_argument, "perplexity: the text has " + std::to_string(tokens.size()) + " tokens, fewer than one chunk of " +
                                                     std::to_string(n_ctx));
    const int first = n_ctx / 2, n_vocab = f.config().n_vocab, batch = std::max(1, opt.batch);
    const auto t0 = std::chrono::steady_clock::now();
    PerplexityResult r;
    double sum = 0, sum2 = 0;
    std::vector<int32_t> chunk(n_ctx);
    for (int c = 0; c < n_chunks; ++c) {
        std::copy(tokens.begin() + static_cast<size_t>(c) * n_ctx, tokens.begin() + static_cast<size_t>(c + 1) * n_ctx, chunk.begin());
        if (opt.bos >= 0) chunk[0] = opt.bos;
        f.reset();
        // positions [0, first]: the logits of position `first` are the first scored ones
        const std::vector<float>* logits = &f.eval(std::span<const int32_t>(chunk.data(), first + 1), false);
        int row0 = first; // position of logits row 0
        int rows = 1;
        for (int j = first; j < n_ctx - 1; ++j) {
            if (j >= row0 + rows) { // the next batch of positions, all rows kept
                row0 = j;
                rows = std::min(batch, n_ctx - 1 - j);
                logits = &f.eval(std::span<const int32_t>(chunk.data() + j, rows), true);
            }
            const float* l = logits->data() + static_cast<size_t>(j - row0) * n_vocab;
            double mx = l[0];
            for (int i = 1; i < n_vocab; ++i) mx = std::max(mx, static_cast<double>(l[i]));
            double z = 0;
            for (int i = 0; i < n_vocab; ++i) z += std::exp(l[i] - mx);
            const double nll = mx + std::log(z) - l[chunk[j + 1]];
            sum += nll;
            sum2 += nll * nll;
            ++r.scored;
        }
        r.running.push_back(std::exp(sum / r.scored));
        if (on_chunk) on_chunk(c, r.running.back());
    }
    r.chunks = n_chunks;
    r.nll = sum / r.scored;
    r.ppl = std::exp(r.nll);
    const double var = r.scored > 1 ? (sum2 / r.scored - r.nll * r.nll) / (r.scored - 1) : 0;
    r.ppl_sd = r.ppl * std::sqrt(std::max(0.0, var));
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
}

} // namespace winnow
