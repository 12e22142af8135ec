// winnow calibrate-sparse: a SPION block pattern per layer from the model's own attention on calibration text.
#include <cstdio>
#include <iostream>

#include <boost/program_options.hpp>

#include "cli/commands.h"
#include "cli/options.h"
#include "io/text_file.h"
#include "model/model.h"
#include "sparse/calibrate.h"
#include "tokenizer/model_tokenizer.h"
#include "winnow/error.h"

namespace po = boost::program_options;

namespace winnow::cli {

int cmd_calibrate_sparse(const std::vector<std::string>& args) {
    std::string model_arg, text_path, out_path, method = "cf";
    sparse::CalibrationOptions o;
    po::options_description opts("winnow calibrate-sparse options");
    opts.add_options()("help,h", "show this help")("model,m", po::value(&model_arg), "model file or directory")(
        "text", po::value(&text_path), "calibration text (UTF-8)")("ctx,c", po::value(&o.ctx)->default_value(1024), "calibration length in tokens")(
        "chunks", po::value(&o.max_chunks)->default_value(4), "chunks of --ctx tokens averaged (0: all)")(
        "block,b", po::value(&o.pattern.block)->default_value(64), "block size in tokens")(
        "method", po::value(&method)->default_value("cf"), "c (conv + top-k), f (threshold + walk), cf (conv + threshold + walk) or coverage (per row, the heaviest blocks up to --coverage of the attention mass)")(
        "coverage", po::value(&o.pattern.coverage)->default_value(0.9, "0.9"), "method coverage: share of each row's attention mass the kept blocks hold")(
        "density", po::value(&o.pattern.density)->default_value(0.1, "0.1"), "method c: fraction of causal blocks kept")(
        "quantile", po::value(&o.pattern.quantile)->default_value(0.96, "0.96"), "methods f/cf: score quantile a walked block must exceed")(
        "window", po::value(&o.pattern.window)->default_value(2), "blocks always kept at the diagonal (the diagonal block and window - 1 to its left)")(
"per-group", po::bool_switch(&o.pattern.per_group), "one pattern per KV head group (the heads that share a KV head) instead of one per layer")(
        "absolute-scores", po::bool_switch(), "score raw probabilities (SPION's reference) instead of probabilities relative to uniform attention")(
        "threads,t", po::value(&o.threads)->default_value(0), "CPU threads (0: all cores)")("out,o", po::value(&out_path), "pattern file to write (atomically)");
    po::variables_map vm;
    if (!parse_options(opts, args, vm)) return 0;
    if (text_path.empty() || out_path.empty()) throw Error(ErrorKind::invalid_argument, "--text FILE and --out FILE are required");
    o.pattern.method = sparse::parse_method(method);
    o.pattern.relative = !vm["absolute-scores"].as<bool>();
    auto model = LoadedModel::load(resolve_model_path(model_arg));
    const auto tok = load_model_tokenizer(*model);
    const std::string text = io::read_text_file(text_path, "text");
    const auto ids = tok->encode(text, tok->add_bos_default(), false);
    o.bos = tok->add_bos_default() ? tok->bos() : -1;
    auto p = sparse::calibrate(*model, ids, o, [](int k, int n) { std::fprintf(stderr, "\rcalibrating: chunk %d/%d", k, n); });
    std::fprintf(stderr, "\n");
    p.text_fnv1a = io::fnv1a_hex(text);
    p.save(out_path);
    double mean = 0, mass = 0;
    for (int l = 0; l < p.n_layer; ++l) {
        const double d = sparse::SparsePattern::density_of(p.mask(l, p.calib_ctx));
        mean += d / p.n_layer;
        mass += p.layers[l].kept_mass / p.n_layer;
        std::fprintf(stderr, "layer %2d: density %.3f, attention mass kept %.3f\n", l, d, p.layers[l].kept_mass);
    }
    std::printf("wrote %s: %s, %d layers, block %d, calibrated at %d tokens over %d chunks, mean density %.3f of the causal blocks holding %.3f of the attention mass\n",
                out_path.c_str(), sparse::to_string(p.method), p.n_layer, p.block, p.calib_ctx, p.calib_chunks, mean, mass);
    return 0;
}

} // namespace winnow::cli
