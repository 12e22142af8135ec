#include "cli/head_queries.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include "backend/backend.h"
#include "decode/forward.h"
#include "head/adaptive_head.h"
#include "head/calibration.h"
#include "io/atomic_file.h"
#include "io/gguf.h"
#include "io/text_file.h"
#include "tokenizer/tokenizer.h"
#include "winnow/error.h"

namespace winnow::cli {

namespace {

// One forward pass per window; texts[w.text] holds the window's tokens.
std::vector<std::vector<float>> collect_queries(const LoadedModel& model, const std::vector<std::vector<int32_t>>& texts, const std::vector<TextWindow>& windows,
                                                int window, int threads, const char* what, const BackendOptions* device) {
    BackendOptions o;
    o.threads = threads;
    auto be = make_backend(device ? *device : o);
    Forward f(model, *be, window);
    std::vector<std::vector<float>> qs;
    for (size_t q = 0; q < windows.size(); ++q) {
        f.reset();
        f.eval(std::span<const int32_t>(texts[windows[q].text].data() + windows[q].start, window - 1)); // the window's last token is the target
        qs.push_back(f.final_hidden());
        if ((q + 1) % 100 == 0) std::fprintf(stderr, "\rcollecting %s queries: %zu/%zu", what, q + 1, windows.size());
    }
    if (windows.size() >= 100) std::fprintf(stderr, "\n");
    return qs;
}

std::vector<TextWindow> in_text(size_t text, const std::vector<size_t>& starts) {
    std::vector<TextWindow> w;
    for (size_t s : starts) w.push_back({text, s});
    return w;
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

// Atomically, through a temporary name of this process's own: several calibrate-head runs may share one cache file
// (the test fixtures do), and a reader sees a whole file or none.
void write_cache(const std::string& cache, const std::string& key, const HeadQueries& hq) {
    const std::string tmp = cache + ".tmp." + std::to_string(::getpid());
    {
        std::ofstream out(tmp, std::ios::binary);
        out << key << "\n";
        for (const auto* set : {&hq.tune, &hq.test})
            for (const auto& x : *set) out.write(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(float));
        out.flush();
        if (!out) {
            out.close();
            std::error_code ec;
            std::filesystem::remove(tmp, ec);
            throw Error(ErrorKind::io, "cannot write the query cache '" + tmp + "' (disk full?)");
        }
    }
    io::commit_file(tmp, cache);
}

} // namespace

std::vector<TextWindow> spread_windows(const std::vector<size_t>& tokens, int window, int count) {
    // the possible starts of text i are [0, tokens[i] - window), as in window_starts; a text shorter than a window has none
    std::vector<size_t> starts_in(tokens.size());
    size_t total = 0;
    for (size_t i = 0; i < tokens.size(); ++i) total += starts_in[i] = tokens[i] > static_cast<size_t>(window) ? tokens[i] - window : 0;
    if (window < 1 || count < 1 || total < static_cast<size_t>(count / 8) || total == 0)
        throw Error(ErrorKind::invalid_argument, "the tuning texts have " + std::to_string(total) + " window starts, too few for " + std::to_string(count) +
                                                     " windows of " + std::to_string(window));
    std::vector<TextWindow> w;
    const double stride = static_cast<double>(total) / count;
    size_t text = 0, before = 0; // starts in the texts before `text`
    for (int q = 0; q < count; ++q) {
        const auto g = static_cast<size_t>(q * stride); // the same rounding as window_starts, so one text gives its windows
        while (g >= before + starts_in[text]) before += starts_in[text++];
        w.push_back({text, g - before});
    }
    return w;
}

HeadQueries collect_head_queries(const LoadedModel& model, const std::string& text_path, const HeadQueryPlan& plan, int threads, const std::string& cache,
                                 const BackendOptions* device) {
    if (!model.gguf()) throw Error(ErrorKind::unsupported, "head queries need a GGUF model (for its tokenizer)");
    auto tok = Tokenizer::from_gguf(*model.gguf());
    const std::string text = io::read_text_file(text_path, "text");
    HeadQueries hq;
    hq.text_hash = io::fnv1a_hex(text); // keys the query cache and names the text in the report
    std::vector<std::vector<int32_t>> texts{tok->encode(text, false, false)};
    hq.text_tokens = texts[0].size();
    hq.boundary = head::tuning_region_end(hq.text_tokens, plan.tune_share);
    // the tuning texts replace the first region as the tuning windows' source; the test region is the same either way
    std::vector<std::vector<int32_t>> tune_texts;
    for (const std::string& path : plan.tune_texts) {
        const std::string t = io::read_text_file(path, "tuning text");
        hq.tune_hashes.push_back(io::fnv1a_hex(t));
        tune_texts.push_back(tok->encode(t, false, false));
        hq.tune_text_tokens.push_back(tune_texts.back().size());
    }
    hq.tune_windows = tune_texts.empty() ? in_text(0, head::window_starts(0, hq.boundary, plan.window, plan.n_tune, "tuning"))
                                         : spread_windows(hq.tune_text_tokens, plan.window, plan.n_tune);
    const int d = model.config().n_embd;
    // the model by content (a path can be reused by another file), the texts by content, and the plan; only with a
    // cache (the model's hash reads the whole file)
    std::ostringstream key;
    if (!cache.empty()) {
        key << "head-queries v2|" << head::model_content_hash(model.path()) << "|" << hq.text_hash << "|" << plan.window << "|" << plan.n_tune << "|"
            << plan.n_test << "|" << hq.boundary;
        if (!hq.tune_hashes.empty()) { // absent without tuning texts, so the caches of the split stay valid
            key << "|tuning texts";
            for (const auto& h : hq.tune_hashes) key << " " << h;
        }
        if (device && device->device != Device::cpu) key << "|" << to_string(device->device);
    }
    if (read_cache(cache, key.str(), d, plan, hq)) return hq;
    hq.tune = collect_queries(model, tune_texts.empty() ? texts : tune_texts, hq.tune_windows, plan.window, threads, "tuning", device);
    if (plan.n_test > 0) {
        const auto test_windows = in_text(0, head::window_starts(hq.boundary, hq.text_tokens, plan.window, plan.n_test, "test"));
        hq.test = collect_queries(model, texts, test_windows, plan.window, threads, "test", device);
    }
    if (!cache.empty()) write_cache(cache, key.str(), hq);
    return hq;
}

} // namespace winnow::cli
