// winnow perplexity: llama.cpp's perplexity protocol (chunks of --ctx tokens, the second half of each scored), with
// progress, dense or block-sparse attention.
#include <cstdio>
#include <iostream>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/device_options.h"
#include "cli/options.h"
#include "cli/sparse_options.h"
#include "decode/perplexity.h"
#include "io/text_file.h"
#include "model/model.h"
#include "tokenizer/model_tokenizer.h"
#include "winnow/error.h"

namespace po = boost::program_options;

namespace winnow::cli {

int cmd_perplexity(const std::vector<std::string>& args) {
    std::string model_arg, text_path, dot;
    int n_ctx = 512, chunks = 0, threads = 0, batch = 256;
    bool json_out = false;
    DeviceArgs device_args;
    SparseArgs sparse_args;
    po::options_description opts("winnow perplexity options");
    opts.add_options()("help,h", "show this help")("model,m", po::value(&model_arg), "model file or directory")(
        "text", po::value(&text_path), "UTF-8 text file to score")("ctx,c", po::value(&n_ctx)->default_value(512), "tokens per chunk")(
        "chunks", po::value(&chunks)->default_value(0), "score at most this many chunks (0: all)")(
        "batch,b", po::value(&batch)->default_value(256), "tokens evaluated at once while scoring")(
        "threads,t", po::value(&threads)->default_value(0), "CPU threads (0: all cores)")("json", po::bool_switch(&json_out), "print one JSON object");
    add_device_options(opts, device_args);
    add_dot_option(opts, dot);
    add_sparse_options(opts, sparse_args);
    po::variables_map vm;
    if (!parse_options(opts, args, vm)) return 0;
    if (text_path.empty()) throw Error(ErrorKind::invalid_argument, "--text FILE is required");
    if (n_ctx < 4 || chunks < 0 || threads < 0 || batch < 1) throw Error(ErrorKind::invalid_argument, "--ctx must be >= 4, --chunks/--threads >= 0, --batch >= 1");
    const BackendOptions bo = backend_options(device_args, threads, dot_mode(dot));
    const GgmlType kv = kv_cache_type(device_args);

    auto model = LoadedModel::load(resolve_model_path(model_arg));
    if (n_ctx > model->config().n_ctx_train)
        throw Error(ErrorKind::invalid_argument, "--ctx " + std::to_string(n_ctx) + " exceeds the model's trained context " + std::to_string(model->config().n_ctx_train));
    const auto tok = load_model_tokenizer(*model);
    const std::string text = io::read_text_file(text_path, "text");
    const auto ids = tok->encode(text, tok->add_bos_default(), false);
    auto backend = make_backend(bo);
    Forward f(*model, *backend, n_ctx, kv);
    const auto masks = apply_sparse_options(sparse_args, model->config(), f);
    PerplexityOptions po_;
    po_.n_ctx = n_ctx;
    po_.max_chunks = chunks;
    po_.bos = tok->add_bos_default() ? tok->bos() : -1;
    po_.batch = batch;
    const int total = chunks > 0 ? std::min<int>(chunks, static_cast<int>(ids.size() / n_ctx)) : static_cast<int>(ids.size() / n_ctx);
    const auto r = perplexity(f, ids, po_, [&](int c, double ppl) {
        if (!json_out) std::fprintf(stderr, "\r[%d/%d] %.4f", c + 1, total, ppl);
    });
    if (!json_out) std::fprintf(stderr, "\n");
    nlohmann::ordered_json j;
    j["model"] = model->path();
    j["text"] = text_path;
    j["text_tokens"] = ids.size();
    j["ctx"] = n_ctx;
    j["chunks"] = r.chunks;
    j["scored"] = r.scored;
    j["nll"] = r.nll;
    j["ppl"] = r.ppl;
    j["ppl_sd"] = r.ppl_sd;
    j["running"] = r.running;
    j["backend"] = backend->name();
    j["attention"] = masks ? "sparse" : "dense";
    if (masks) {
        j["sparse_density"] = masks->mean_density;
        j["sparse_select_blocks"] = masks->select_blocks;
        j["sparse_select_block_size"] = masks->select_unit;
    }
    j["seconds"] = r.seconds;
    if (json_out) std::cout << j.dump(2) << "\n";
    else std::printf("Final estimate: PPL = %.4f +/- %.5f  (%d chunks of %d, %lld predictions, %.1f s)\n", r.ppl, r.ppl_sd, r.chunks, n_ctx,
                     static_cast<long long>(r.scored), r.seconds);
    return 0;
}

} // namespace winnow::cli
