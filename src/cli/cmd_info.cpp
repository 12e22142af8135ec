// winnow info: what a model file holds, as a person or a script wants to see it.
#include <cstdio>
#include <iostream>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/device_options.h"
#include "cli/options.h"
#include "cli/sampling_options.h"
#include "decode/sampling_defaults.h"
#include "decode/forward.h"
#ifdef WINNOW_HAVE_CUDA
#include "backend/cuda/device.h"
#endif
#include "io/gguf.h"
#include "model/model.h"
#include "tokenizer/model_tokenizer.h"

namespace po = boost::program_options;

namespace winnow::cli {

namespace {

// A template's family by its markers (the same families tests/templates renders), for a one-line summary.
std::string chat_template_name(const std::string& t) {
    if (t.empty()) return "none";
    if (t.find("<|im_start|>") != std::string::npos) return "ChatML";
    if (t.find("<|start_header_id|>") != std::string::npos) return "Llama-3";
    if (t.find("<start_of_turn>") != std::string::npos) return "Gemma";
    if (t.find("<|user|>") != std::string::npos && t.find("<|end|>") != std::string::npos) return "Phi-3";
    if (t.find("[INST]") != std::string::npos) return t.find("<<SYS>>") != std::string::npos ? "Llama-2" : "Mistral";
    return "custom";
}

std::string first_line(const std::string& s, size_t max_chars) {
    std::string line = s.substr(0, s.find('\n'));
    if (line.size() > max_chars) line = line.substr(0, max_chars) + "...";
    return line;
}

// BOS, EOS and every end-of-generation token with their ids and texts; the error when the tokenizer does not load.
nlohmann::ordered_json special_tokens(const LoadedModel& model) {
    nlohmann::ordered_json j;
    try {
        const std::unique_ptr<Tokenizer> tok = load_model_tokenizer(model);
        auto token = [&](int32_t id) {
            return nlohmann::ordered_json{{"id", id}, {"text", id >= 0 && id < tok->n_vocab() ? tok->token_to_piece(id, true) : ""}};
        };
        j["bos"] = tok->bos() >= 0 ? token(tok->bos()) : nlohmann::ordered_json(nullptr);
        j["eos"] = tok->eos() >= 0 ? token(tok->eos()) : nlohmann::ordered_json(nullptr);
        j["add_bos"] = tok->add_bos_default();
        j["eog"] = nlohmann::ordered_json::array();
        for (int32_t id = 0; id < tok->n_vocab(); ++id)
            if (tok->is_eog(id)) j["eog"].push_back(token(id));
    } catch (const std::exception& e) {
        j["error"] = e.what();
    }
    return j;
}

std::string special_tokens_text(const nlohmann::ordered_json& j) {
    if (j.contains("error")) return "unavailable: " + j["error"].get<std::string>();
    auto one = [](const nlohmann::ordered_json& t) { return t.is_null() ? std::string("none") : t["text"].get<std::string>() + " (" + std::to_string(t["id"].get<int>()) + ")"; };
    std::string s = "BOS " + one(j["bos"]) + (j["add_bos"].get<bool>() ? ", added" : ", not added") + " | EOS " + one(j["eos"]) + " | end of generation:";
    for (const auto& t : j["eog"]) s += " " + one(t);
    return s;
}

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
    j["architecture"] = c.architecture();
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
        // Llama 3.1's scaling: the angle divisors, slowest pair last (1 where a pair keeps its frequency)
        if (!model->weights().rope_freqs.empty()) j["rope_freq_factors"] = model->weights().rope_freqs;
    }
    j["tied_head"] = c.tied_head;
    if (c.arch == Arch::llama) j["gate_activation"] = to_string(c.gate_act);
    if (c.embd_scale != 0) j["embedding_scale"] = c.embd_scale;
    if (c.attn_scale != 0) j["attention_scale"] = c.attn_scale;
    if (c.attn_softcap != 0) j["attention_softcap"] = c.attn_softcap; // gemma2
    if (c.final_softcap != 0) j["logit_softcap"] = c.final_softcap;
    if (c.sliding_window > 0) { // gemma2/3: which layers attend through the window ("S") and which to everything ("F")
        std::string pattern;
        for (int i = 0; i < c.n_layer; ++i) pattern += c.layer_slides(i) ? 'S' : 'F';
        j["sliding_window"] = c.sliding_window;
        j["layer_attention"] = pattern;
        j["rope_freq_base_sliding"] = c.rope_base_sliding != 0 ? c.rope_base_sliding : c.rope_base;
    }
    j["matrix_types"] = model->matrix_type_counts();
    j["matrix_bytes_per_token"] = model->matrix_bytes_per_token();
    if (const io::GgufFile* g = model->gguf()) {
        j["gguf_version"] = g->version();
        j["tokenizer"] = g->get_string("tokenizer.ggml.model").value_or("none");
        j["pre_tokenizer"] = g->get_string("tokenizer.ggml.pre").value_or("none");
    }
    const std::string chat_template = load_chat_template(*model);
    j["chat_template"] = {{"name", chat_template_name(chat_template)}, {"bytes", chat_template.size()}, {"source", chat_template}};
    j["special_tokens"] = special_tokens(*model);
    const SamplingDefaults recommended = recommended_sampling(*model);
    j["sampling_defaults"] = sampling_json(recommended.params, recommended);
    if (!recommended.ignored.empty()) j["sampling_defaults"]["ignored"] = recommended.ignored;
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
    for (auto& [k, v] : j.items()) {
        if (k == "chat_template") {
            std::cout << k << ": " << v["name"].get<std::string>();
            if (!chat_template.empty())
                std::cout << " (" << chat_template.size() << " bytes; `winnow info --json` has it whole): " << first_line(chat_template, 100);
            std::cout << "\n";
        } else if (k == "special_tokens") {
            std::cout << k << ": " << special_tokens_text(v) << "\n";
        } else if (k == "sampling_defaults") {
            std::cout << k << ": " << describe_sampling(recommended.params) << "\n  from " << recommended.source() << "\n";
            for (const auto& why : recommended.ignored) std::cout << "  ignored: " << why << "\n";
        } else {
            std::cout << k << ": " << (v.is_string() ? v.get<std::string>() : v.dump()) << "\n";
        }
    }
    return 0;
}

} // namespace winnow::cli
