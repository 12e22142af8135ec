// winnow info: what a model file holds, as a person or a script wants to see it.
#include <cstdio>
#include <iostream>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/device_options.h"
#include "cli/options.h"
#include "decode/forward.h"
#ifdef WINNOW_HAVE_CUDA
#include "backend/cuda/device.h"
#endif
#include "io/gguf.h"
#include "model/model.h"

namespace po = boost::program_options;

namespace winnow::cli {

namespace {
std::vector<std::string> cuda_device_names() {
    std::vector<std::string> names;
#ifdef WINNOW_HAVE_CUDA
    for (int i = 0; i < cuda::device_count(); ++i) names.push_back(cuda::device_name(i));
#endif
    return names;
}
} // namespace

int cmd_info(const std::vector<std::string>& args) {
    std::string model_arg;
    bool json_out = false;
    DeviceArgs device_args;
    po::options_description opts("winnow info options");
    opts.add_options()("help,h", "show this help")("model,m", po::value(&model_arg), "model file (.gguf) or HF checkpoint directory")(
        "json", po::bool_switch(&json_out), "print one JSON object");
    add_device_options(opts, device_args);
    po::variables_map vm;
    if (!parse_options(opts, args, vm)) return 0;
    const BackendOptions backend_opts = backend_options(device_args, 0, CpuDotMode::f32);
    const GgmlType kv_type = kv_cache_type(device_args);
    auto model = LoadedModel::load(resolve_model_path(model_arg));
    const ModelConfig& c = model->config();

    nlohmann::ordered_json j;
    j["path"] = model->path();
    j["format"] = model->format() == ModelFormat::gguf ? "gguf" : "safetensors";
    j["name"] = c.name;
    j["architecture"] = to_string(c.arch);
    j["n_vocab"] = c.n_vocab;
    j["n_embd"] = c.n_embd;
    j["n_layer"] = c.n_layer;
    j["n_head"] = c.n_head;
    j["n_head_kv"] = c.n_head_kv;
    j["head_dim"] = c.head_dim;
    j["n_ff"] = c.n_ff;
    j["context_length"] = c.n_ctx_train;
    j["norm_eps"] = c.norm_eps;
    j["rope"] = to_string(c.rope);
    if (c.rope != RopeStyle::none) {
        j["rope_dim"] = c.rope_dim;
        j["rope_freq_base"] = c.rope_base;
    }
    j["tied_head"] = c.tied_head;
    j["matrix_types"] = model->matrix_type_counts();
    j["matrix_bytes_per_token"] = model->matrix_bytes_per_token();
    if (const io::GgufFile* g = model->gguf()) {
        j["gguf_version"] = g->version();
        j["tokenizer"] = g->get_string("tokenizer.ggml.model").value_or("none");
        j["pre_tokenizer"] = g->get_string("tokenizer.ggml.pre").value_or("none");
    }
    // the devices this build can run on; with --device, that device loads the model (every op it needs is there)
    j["cuda_devices"] = cuda_device_names();
    if (vm["device"].defaulted() == false) {
        auto backend = make_backend(backend_opts);
        Forward check(*model, *backend, 1, kv_type);
        j["device"] = backend->name();
        j["device_runs_model"] = true;
    }
    if (json_out) {
        std::cout << j.dump(2) << "\n";
        return 0;
    }
    for (auto& [k, v] : j.items()) std::cout << k << ": " << (v.is_string() ? v.get<std::string>() : v.dump()) << "\n";
    return 0;
}

} // namespace winnow::cli
