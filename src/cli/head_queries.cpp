#include "cli/head_queries.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "backend/backend.h"
#include "decode/forward.h"
#include "io/gguf.h"
#include "io/text_file.h"
#include "tokenizer/tokenizer.h"
#include "winnow/error.h"

namespace winnow::cli {

namespace {

std::vector<std::vector<float>> collect_queries(const LoadedModel& model, const std::vector<int32_t>& ids, int window, int n_queries, int threads) {
    if (static_cast<int>(ids.size()) < window + n_queries / 8)
        throw Error(ErrorKind::invalid_argument, "the text has " + std::to_string(ids.size()) + " tokens, too few for " + std::to_string(n_queries) +
                                                     " windows of " + std::to_string(window));
    auto be = make_cpu_backend(threads);
    Forward f(model, *be, window);
    std::vector<std::vector<float>> qs;
    const double stride = static_cast<double>(ids.size() - window) / n_queries;
    for (int q = 0; q < n_queries; ++q) {
        const size_t start = static_cast<size_t>(q * stride);
        f.reset();
        f.eval(std::span<const int32_t>(ids.data() + start, window - 1)); // the window's last token is the target
        qs.push_back(f.final_hidden());
        if ((q + 1) % 100 == 0) std::fprintf(stderr, "\rcollecting queries: %d/%d", q + 1, n_queries);
    }
    std::fprintf(stderr, "\n");
    return qs;
}

} // namespace

HeadQueries collect_head_queries(const LoadedModel& model, const std::string& text_path, int window, int n_queries, int threads, const std::string& cache) {
    if (!model.gguf()) throw Error(ErrorKind::unsupported, "head queries need a GGUF model (for its tokenizer)");
    auto tok = Tokenizer::from_gguf(*model.gguf());
    const std::string text = io::read_text_file(text_path, "text");
    HeadQueries hq;
    hq.text_hash = io::fnv1a_hex(text); // keys the query cache and names the text in the report
    const auto ids = tok->encode(text, false, false);
    hq.text_tokens = ids.size();
    const int d = model.config().n_embd;
    const std::string key = model.path() + "|" + hq.text_hash + "|" + std::to_string(window) + "|" + std::to_string(n_queries);
    if (!cache.empty() && std::filesystem::exists(cache)) {
        std::ifstream in(cache, std::ios::binary);
        std::string header;
        std::getline(in, header);
        if (header == key) {
            for (int q = 0; q < n_queries; ++q) {
                std::vector<float> x(d);
                in.read(reinterpret_cast<char*>(x.data()), d * sizeof(float));
                hq.queries.push_back(std::move(x));
            }
            if (in) return hq;
            hq.queries.clear();
        }
    }
    hq.queries = collect_queries(model, ids, window, n_queries, threads);
    if (!cache.empty()) {
        {
            std::ofstream out(cache + ".tmp", std::ios::binary);
            out << key << "\n";
            for (auto& x : hq.queries) out.write(reinterpret_cast<const char*>(x.data()), d * sizeof(float));
        }
        std::filesystem::rename(cache + ".tmp", cache);
    }
    return hq;
}

} // namespace winnow::cli
