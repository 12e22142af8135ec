// winnow logits: the next-token logits of a token sequence, written as a float32 .npy (rows x n_vocab) for comparison
// with another engine (HF transformers, llama.cpp) on the same weights. In the manner of llama.cpp's
// --kl-divergence-base, but the comparison is left to the peer's side (bench/device/logits_parity.py).
// --step prefill evaluates the sequence in batches (the prompt path: GEMMs, cuBLAS on CUDA); --step decode one token
// per step (the generation path: GEMVs, a recorded step on CUDA), so each path can be checked on its own.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <span>
#include <sstream>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/device_options.h"
#include "cli/options.h"
#include "decode/forward.h"
#include "io/npy.h"
#include "io/text_file.h"
#include "model/model.h"
#include "tokenizer/model_tokenizer.h"
#include "winnow/error.h"

namespace po = boost::program_options;

namespace winnow::cli {

namespace {

// Token ids separated by commas and/or whitespace; anything else is refused, naming the item.
std::vector<int32_t> parse_ids(const std::string& text, const std::string& source) {
    std::string spaced = text;
    for (char& c : spaced)
        if (c == ',') c = ' ';
    std::istringstream in(spaced);
    std::vector<int32_t> ids;
    for (std::string item; in >> item;) {
        int32_t v = 0;
        const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
        if (ec != std::errc() || end != item.data() + item.size())
            throw Error(ErrorKind::invalid_argument, source + ": '" + item + "' is not a token id");
        ids.push_back(v);
    }
    return ids;
}

struct Evaluated {
    std::vector<float> logits; // rows x n_vocab, row i after ids[0..i]
    double seconds = 0;
};

// Every position's logits, by prefill batches or one decode step per token.
Evaluated evaluate(Forward& f, const std::vector<int32_t>& ids, bool decode, int batch, int64_t n_vocab) {
    Evaluated e;
    e.logits.reserve(ids.size() * static_cast<size_t>(n_vocab));
    const auto t0 = std::chrono::steady_clock::now();
    const size_t step = decode ? 1 : static_cast<size_t>(batch);
    for (size_t i = 0; i < ids.size(); i += step) {
        const size_t n = std::min(step, ids.size() - i);
        const std::vector<float>& rows = f.eval(std::span<const int32_t>(ids.data() + i, n), true);
        e.logits.insert(e.logits.end(), rows.begin(), rows.end());
    }
    e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return e;
}

} // namespace

int cmd_logits(const std::vector<std::string>& args) {
    std::string model_arg, ids_arg, ids_file, prompt, out_path, rows_arg = "all", step_arg = "prefill", dot;
    int threads = 0, batch = 512;
    bool json_out = false;
    DeviceArgs device_args;
    po::options_description opts("winnow logits options");
    opts.add_options()("help,h", "show this help")("model,m", po::value(&model_arg), "model file or directory")(
        "ids", po::value(&ids_arg), "token ids, separated by commas or spaces")("ids-file", po::value(&ids_file), "read the token ids from this file")(
        "prompt,p", po::value(&prompt), "text to tokenize (BOS as the model declares) instead of ids")(
        "out,o", po::value(&out_path), "output .npy file: float32 [rows][n_vocab], written atomically")(
        "rows", po::value(&rows_arg)->default_value("all"), "all (one row per token) or last")(
        "step", po::value(&step_arg)->default_value("prefill"), "prefill (batches of --batch tokens) or decode (one token per step, as generation runs)")(
        "batch,b", po::value(&batch)->default_value(512), "tokens per prefill batch")("threads,t", po::value(&threads)->default_value(0), "CPU threads (0: all cores)")("json", po::bool_switch(&json_out), "print a JSON summary");
    add_device_options(opts, device_args);
    add_dot_option(opts, dot);
    po::variables_map vm;
    if (!parse_options(opts, args, vm)) return 0;
    if (out_path.empty()) throw Error(ErrorKind::invalid_argument, "--out FILE.npy is required");
    if (!ids_arg.empty() + !ids_file.empty() + !prompt.empty() != 1)
        throw Error(ErrorKind::invalid_argument, "give exactly one of --ids, --ids-file and --prompt");
    if (rows_arg != "all" && rows_arg != "last") throw Error(ErrorKind::invalid_argument, "--rows must be all or last, not '" + rows_arg + "'");
    if (step_arg != "prefill" && step_arg != "decode") throw Error(ErrorKind::invalid_argument, "--step must be prefill or decode, not '" + step_arg + "'");
    if (batch < 1 || threads < 0) throw Error(ErrorKind::invalid_argument, "--batch must be >= 1 and --threads >= 0");
    const BackendOptions bo = backend_options(device_args, threads, dot_mode(dot));
    const GgmlType kv = kv_cache_type(device_args);

    auto model = LoadedModel::load(resolve_model_path(model_arg));
    std::vector<int32_t> ids;
    if (!prompt.empty()) {
        const auto tok = load_model_tokenizer(*model);
        ids = tok->encode(prompt, tok->add_bos_default(), false);
    } else {
        ids = ids_file.empty() ? parse_ids(ids_arg, "--ids") : parse_ids(io::read_text_file(ids_file, "ids file"), ids_file);
    }
    const int64_t n_vocab = model->config().n_vocab;
    if (ids.empty()) throw Error(ErrorKind::invalid_argument, "no token ids to evaluate");
    for (int32_t id : ids)
        if (id < 0 || id >= n_vocab) throw Error(ErrorKind::invalid_argument, "token id " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(n_vocab) + ")");
    if (static_cast<int64_t>(ids.size()) > model->config().n_ctx_train)
        throw Error(ErrorKind::invalid_argument, std::to_string(ids.size()) + " tokens exceed the model's trained context " + std::to_string(model->config().n_ctx_train));

    auto backend = make_backend(bo);
    Forward f(*model, *backend, static_cast<int>(ids.size()), kv);
    const Evaluated e = evaluate(f, ids, step_arg == "decode", batch, n_vocab);
    const bool last_only = rows_arg == "last";
    const int64_t rows = last_only ? 1 : static_cast<int64_t>(ids.size());
    const std::span<const float> written = std::span<const float>(e.logits).last(static_cast<size_t>(rows * n_vocab));
    io::write_npy_f32(out_path, written, rows, n_vocab);

    const float* last = written.data() + (rows - 1) * n_vocab;
    const int64_t top = std::max_element(last, last + n_vocab) - last; // the first maximum, as greedy picks
    nlohmann::ordered_json j;
    j["model"] = model->path();
    j["out"] = out_path;
    j["tokens"] = ids.size();
    j["rows"] = rows;
    j["n_vocab"] = n_vocab;
    j["step"] = step_arg;
    j["backend"] = backend->name();
    j["replayed_steps"] = f.replayed_steps();
    j["last_argmax"] = top;
    j["seconds"] = e.seconds;
    if (json_out) std::cout << j.dump(2) << "\n";
    else std::printf("wrote %lld x %lld logits to %s (%s, %s; last row's argmax %lld)\n", static_cast<long long>(rows), static_cast<long long>(n_vocab),
                     out_path.c_str(), step_arg.c_str(), backend->name(), static_cast<long long>(top));
    return 0;
}

} // namespace winnow::cli
