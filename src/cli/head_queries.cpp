#include "cli/head_queries.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "backend/backend.h"
#include "decode/forward.h"
#include "head/adaptive_head.h"
#include "head/calibration.h"
#include "io/gguf.h"
#include "io/text_file.h"
#include "tokenizer/tokenizer.h"
#include "winnow/error.h"

namespace winnow::cli {

namespace {

std::vector<std::vector<float>> collect_queries(const LoadedModel& model, const std::vector<int32_t>& ids, const std::vector<size_t>& starts, int window,
                                                int threads, const char* what, const BackendOptions* device) {
    BackendOptions o;
    o.threads = threads;
    auto be = make_backend(device ? *device : o);
    Forward f(model, *be, window);
    std::vector<std::vector<float>> qs;
    for (size_t q = 0; q < starts.size(); ++q) {
        f.reset();
        f.eval(std::span<const int32_t>(ids.data() + starts[q], window - 1)); // the window's last token is the target
        qs.push_back(f.final_hidden());
        if ((q + 1) % 100 == 0) std::fprintf(stderr, "\rcollecting %s queries: %zu/%zu", what, q + 1, starts.size());
    }
    if (starts.size() >= 100) std::fprintf(stderr, "\n");
    return qs;
}

bool read_cache(const std::string& cache, const std::string& key, int d, const HeadQueryPlan& plan, HeadQueries& hq) {
    if (cache.empty() || !std::filesystem::exists(cache)) return false;
    std::ifstream in(cache, std::ios::binary);
    std::string header;
    std::getline(in, header);
    if (header != key) return false;
    auto read = [&](int count, std::vector<std::vector<float>>& out) {
        for (int q = 0; q < count; ++q) {
            std::vector<float> x(d);
            in.read(reinterpret_cast<char*>(x.data()), d * sizeof(float));
            out.push_back(std::move(x));
        }
    };
    read(plan.n_tune, hq.tune);
    read(plan.n_test, hq.test);
    if (in) return true;
    hq.tune.clear();
    hq.test.clear();
    return false;
}

void write_cache(const std::string& cache, const std::string& key, const HeadQueries& hq) {
    {
        std::ofstream out(cache + ".tmp", std::ios::binary);
        out << key << "\n";
        for (const auto* set : {&hq.tune, &hq.test})
            for (const auto& x : *set) out.write(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(float));
    }
    std::filesystem::rename(cache + ".tmp", cache);
}

} // namespace

HeadQueries collect_head_queries(const LoadedModel& model, const std::string& text_path, const HeadQueryPlan& plan, int threads, const std::string& cache,
                                 const BackendOptions* device) {
    if (!model.gguf()) throw Error(ErrorKind::unsupported, "head queries need a GGUF model (for its tokenizer)");
    auto tok = Tokenizer::from_gguf(*model.gguf());
    const std::string text = io::read_text_file(text_path, "text");
    HeadQueries hq;
    hq.text_hash = io::fnv1a_hex(text); // keys the query cache and names the text in the report
    const auto ids = tok->encode(text, false, false);
    hq.text_tokens = ids.size();
    hq.boundary = head::tuning_region_end(ids.size(), plan.tune_share);
    const int d = model.config().n_embd;
    // the model by content (a path can be reused by another file), the text by content, and the plan
    std::ostringstream key;
    key << "head-queries v2|" << head::model_content_hash(model.path()) << "|" << hq.text_hash << "|" << plan.window << "|" << plan.n_tune << "|"
        << plan.n_test << "|" << hq.boundary;
    if (device && device->device != Device::cpu) key << "|" << to_string(device->device);
    if (read_cache(cache, key.str(), d, plan, hq)) return hq;
    const auto tune_starts = head::window_starts(0, hq.boundary, plan.window, plan.n_tune, "tuning");
    hq.tune = collect_queries(model, ids, tune_starts, plan.window, threads, "tuning", device);
    if (plan.n_test > 0) {
        const auto test_starts = head::window_starts(hq.boundary, ids.size(), plan.window, plan.n_test, "test");
        hq.test = collect_queries(model, ids, test_starts, plan.window, threads, "test", device);
    }
    if (!cache.empty()) write_cache(cache, key.str(), hq);
    return hq;
}

} // namespace winnow::cli
