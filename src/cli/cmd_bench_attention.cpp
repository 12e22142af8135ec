// winnow bench attention: the attention op alone, dense vs block-sparse (a calibrated SPION pattern, extended to each
// context length), for one decoded token (all layers' masks, the model's head shapes) and a prefill batch, per
// context length. Median of repeated runs, random queries and caches.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <random>
#include <sstream>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "cli/bench_stats.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "model/model.h"
#include "sparse/pattern.h"
#include "winnow/error.h"

namespace po = boost::program_options;

namespace winnow::cli {

namespace {

using Clock = std::chrono::steady_clock;

Tensor random_tensor(Backend& be, int64_t rows, int64_t cols, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> h(static_cast<size_t>(rows * cols));
    for (auto& v : h) v = nd(rng);
    Tensor t = be.alloc(GgmlType::F32, rows, cols);
    be.upload(h.data(), t);
    return t;
}

} // namespace

int cmd_bench_attention(const std::vector<std::string>& args) {
    std::string model_arg, pattern_path, ctx_list = "1024,2048,4096,8192";
    int reps = 5, threads = 0, prefill = 64;
    bool json_out = false;
    po::options_description opts("winnow bench attention options");
    opts.add_options()("help,h", "show this help")("model,m", po::value(&model_arg), "model (for its head shapes and layer count)")(
        "sparse-pattern", po::value(&pattern_path), "pattern from `winnow calibrate-sparse`")(
        "ctx", po::value(&ctx_list)->default_value("1024,2048,4096,8192"), "context lengths, comma-separated")(
        "prefill", po::value(&prefill)->default_value(64), "query rows of the prefill case (the last rows of the context)")(
        "reps,r", po::value(&reps)->default_value(5), "timed repetitions (median) after one warm-up")("threads,t", po::value(&threads)->default_value(0), "CPU threads")(
        "json", po::bool_switch(&json_out), "print rows as JSON");
    po::variables_map vm;
    if (!parse_options(opts, args, vm)) return 0;
    if (pattern_path.empty()) throw Error(ErrorKind::invalid_argument, "--sparse-pattern FILE is required");
    if (reps < 1 || prefill < 1) throw Error(ErrorKind::invalid_argument, "--reps and --prefill must be >= 1");
    auto model = LoadedModel::load(resolve_model_path(model_arg));
    const ModelConfig& c = model->config();
    const auto pattern = sparse::SparsePattern::load(pattern_path);
    pattern.check_model(c, pattern_path);
    std::vector<int> ctxs;
    std::stringstream ss(ctx_list);
    for (std::string item; std::getline(ss, item, ',');) ctxs.push_back(std::stoi(item));
    auto be = make_cpu_backend(threads);
    const int qd = c.n_head * c.head_dim, kvd = c.n_head_kv * c.head_dim;

    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    for (int ctx : ctxs) {
        if (ctx < prefill + 1 || ctx > c.n_ctx_train) throw Error(ErrorKind::invalid_argument, "context " + std::to_string(ctx) + " is outside (prefill, trained context]");
        const Tensor k = random_tensor(*be, ctx, kvd, 1), v = random_tensor(*be, ctx, kvd, 2), q = random_tensor(*be, prefill, qd, 3);
        const Tensor out = be->alloc(GgmlType::F32, prefill, qd);
        std::vector<BlockMask> masks;
        double density = 0;
        for (int l = 0; l < c.n_layer; ++l) {
            masks.push_back(pattern.mask(l, ctx));
            density += sparse::SparsePattern::density_of(masks.back()) / c.n_layer;
        }
        // time all layers' attention for `rows` query rows ending at the last position
        auto time_all_layers = [&](bool sparse_attention, int n_rows) {
            std::vector<double> ms;
            for (int r = -1; r < reps; ++r) {
                const auto t0 = Clock::now();
                for (int l = 0; l < c.n_layer; ++l) {
                    AttentionParams p;
                    p.pos0 = ctx - n_rows;
                    p.n_head = c.n_head;
                    p.n_head_kv = c.n_head_kv;
                    p.head_dim = c.head_dim;
                    p.mask = sparse_attention ? &masks[l] : nullptr;
                    be->attention(q.rows_view(0, n_rows), k, v, out.rows_view(0, n_rows), p);
                }
                if (r >= 0) ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
            }
            return median(ms);
        };
        for (int n_rows : {1, prefill}) {
            const double dense = time_all_layers(false, n_rows), sparse = time_all_layers(true, n_rows);
            nlohmann::ordered_json j;
            j["ctx"] = ctx;
            j["query_rows"] = n_rows;
            j["layers"] = c.n_layer;
            j["density"] = density;
            j["dense_ms"] = dense;
            j["sparse_ms"] = sparse;
            j["speedup"] = dense / sparse;
            j["ideal_speedup"] = 1.0 / density;
            rows.push_back(j);
            if (!json_out)
                std::printf("ctx %6d  rows %4d  density %.3f  dense %9.3f ms  sparse %9.3f ms  speedup %5.2fx (ideal %5.2fx)\n", ctx, n_rows, density, dense, sparse,
                            dense / sparse, 1.0 / density);
        }
    }
    if (json_out) std::cout << rows.dump(2) << "\n";
    return 0;
}

} // namespace winnow::cli
