// winnow generate: text generation with streaming output.
#include <cstdio>
#include <filesystem>
#include <optional>
#include <iostream>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "cli/adaptive_head_options.h"
#include "cli/commands.h"
#include "cli/device_options.h"
#include "cli/options.h"
#include "cli/run_stats.h"
#include "cli/sampling_options.h"
#include "cli/sparse_options.h"
#include "decode/generator.h"
#include "head/adaptive_head.h"
#include "io/gguf.h"
#include "io/text_file.h"
#include "model/model.h"
#include "tokenizer/model_tokenizer.h"
#include "winnow/error.h"

namespace po = boost::program_options;

namespace winnow::cli {


int cmd_generate(const std::vector<std::string>& args) {
    std::string model_arg, prompt, prompt_file, system, dot, head_mode = "exact", calibration_path, basis_path, template_kwargs, template_file;
    GenerateOptions opt;
    SamplingArgs sampling_args;
    int n_ctx = 0, threads = 0;
    bool chat = false, stats = false, json_out = false;
    std::vector<std::string> stops;
    std::string head_impl;
    head::AdaptiveHeadOptions head_options;
    DeviceArgs device_args;
    SparseArgs sparse_args;
    po::options_description opts("winnow generate options");
    opts.add_options()("help,h", "show this help")("model,m", po::value(&model_arg), "model file (.gguf); default: SmolLM2-135M-Instruct")(
        "prompt,p", po::value(&prompt), "prompt text")("file,f", po::value(&prompt_file), "read the prompt from this UTF-8 file")("n-predict,n", po::value(&opt.max_tokens)->default_value(64), "tokens to generate at most")(
        "chat", po::bool_switch(&chat), "wrap the prompt in the model's chat template")(
        "system", po::value(&system), "system message for --chat (default: the template's own)")(
        "chat-template-file", po::value(&template_file), "Jinja chat template for --chat instead of the model's")(
        "chat-template-kwargs", po::value(&template_kwargs), "more variables for --chat's template, a JSON object (e.g. '{\"enable_thinking\": false}' for Qwen3)")(
        "stop", po::value(&stops)->composing(), "stop string (repeatable); the output ends before it")(
        "ignore-eos", po::bool_switch(&opt.ignore_eos), "keep generating past end-of-generation tokens")(
        "ctx", po::value(&n_ctx)->default_value(2048), "context length in tokens (0 = the model's training context)")(
        "threads,t", po::value(&threads)->default_value(0), "CPU threads (0 = all cores)")(
        "head", po::value(&head_mode)->default_value("exact"), "output head: exact, or adaptive (AdaptiveSoftmax; serves greedy and pure top-k sampling, so use it with --temp 0 or --top-p 1 --min-p 0 --repeat-penalty 1)")(
        "delta", po::value(&opt.adaptive.delta)->default_value(0.01, "0.01"), "adaptive head: failure probability")(
        "eps", po::value(&opt.adaptive.epsilon)->default_value(0.3, "0.3"), "adaptive head: relative error of the top probability")(
        "head-impl", po::value(&head_impl)->default_value("fast"), "adaptive head: fast (incremental estimator, SIMD, all cores; with --device cuda its top-1 queries run on the GPU) or faithful (the paper's reference, CPU only)")(
        "head-calibration", po::value(&calibration_path), "adaptive head: calibrated factors (default MODEL.head.json if present)")(
        "stats", po::bool_switch(&stats), "print to stderr: prompt and generation speed, model load time, peak memory, the sampling settings and their source")(
        "json", po::bool_switch(&json_out), "print one JSON object (text, token ids, stats) instead of streaming");
    add_sampling_options(opts, sampling_args);
    add_adaptive_head_options(opts, head_options, basis_path);
    add_device_options(opts, device_args);
    add_dot_option(opts, dot);
    add_sparse_options(opts, sparse_args);
    po::variables_map vm;
    if (!parse_options(opts, args, vm)) return 0;
    if (vm.count("prompt") && vm.count("file")) throw Error(ErrorKind::invalid_argument, "give the prompt as -p TEXT or -f FILE, not both");
    if (vm.count("file")) prompt = io::read_text_file(prompt_file, "prompt file");
    else if (!vm.count("prompt")) throw Error(ErrorKind::invalid_argument, "a prompt is required (-p TEXT or -f FILE)");
    check_sampler_order(sampling_args);
    if ((vm.count("chat-template-kwargs") || vm.count("chat-template-file")) && !chat)
        throw Error(ErrorKind::invalid_argument, std::string(vm.count("chat-template-file") ? "--chat-template-file" : "--chat-template-kwargs") + " needs --chat");
    check_chat_template_kwargs(template_kwargs);
    if (n_ctx < 0 || threads < 0) throw Error(ErrorKind::invalid_argument, "--ctx and --threads must be >= 0");
    if (head_mode != "exact" && head_mode != "adaptive") throw Error(ErrorKind::invalid_argument, "--head must be exact or adaptive");
    if (!(opt.adaptive.delta > 0 && opt.adaptive.delta < 1) || !(opt.adaptive.epsilon > 0)) throw Error(ErrorKind::invalid_argument, "--delta must be in (0, 1) and --eps > 0");
    opt.head = head_mode == "adaptive" ? HeadMode::adaptive : HeadMode::exact;
    opt.stop = stops;

    const BackendOptions backend_opts = backend_options(device_args, threads, dot_mode(dot));
    const GgmlType kv_type = kv_cache_type(device_args);

    const std::string model_path = resolve_model_path(model_arg); // may fetch the default model: not load time
    const LoadTimer load_timer;
    auto model = LoadedModel::load(model_path);
    const SamplingDefaults recommended = recommended_sampling(*model);
    opt.sampling = resolve_sampling(vm, sampling_args, recommended);
    const std::unique_ptr<Tokenizer> tokenizer = load_model_tokenizer(*model);
    const ChatTemplate chat_template = load_chat_template_for(*model, *tokenizer, {template_file, template_kwargs});
    if (chat) prompt = apply_chat_template(chat_template, system, prompt);
    const auto ids = chat ? encode_chat_prompt(*tokenizer, prompt) : tokenizer->encode(prompt, tokenizer->add_bos_default(), true);
    auto backend = make_backend(backend_opts);
    // out-of-range head options and a bad basis file are refused with --head exact too, not passed over in silence
    head::ModelContentHash content_hash(model->path()); // read once, when a basis or a calibration file needs it
    load_head_basis(basis_path, content_hash, model->config().n_embd, head_options);
    head::check_options(head_options, model->config().n_vocab, model->config().n_embd);
    std::unique_ptr<head::AdaptiveHead> adaptive;
    std::string calibration_note = "theory constants (uncalibrated)";
    if (opt.head == HeadMode::adaptive) {
        head_options.impl = head::parse_head_impl(head_impl);
        head_options.threads = threads;
        head_options.device = backend_opts.device; // the backend made the CUDA device current: the GPU head uses it
        adaptive = std::make_unique<head::AdaptiveHead>(*model, head_options);
        if (calibration_path.empty() && std::filesystem::exists(model->path() + ".head.json")) calibration_path = model->path() + ".head.json";
        std::optional<head::HeadCalibrationFile> cal;
        // refused in one line when made on another model's content or for another --eps
        if (!calibration_path.empty()) {
            cal = head::HeadCalibrationFile::load(calibration_path);
            cal->check_matches(calibration_path, content_hash(), opt.adaptive.epsilon);
        }
        const head::HeadFactors factors = head::head_factors(cal ? &*cal : nullptr, calibration_path, head_options, opt.adaptive.delta);
        opt.adaptive.fudge_best = factors.fudge_best;
        opt.adaptive.fudge_norm = factors.fudge_norm;
        calibration_note = factors.note;
    }
    Generator gen(*model, *tokenizer, *backend, n_ctx == 0 ? 0 : std::min(n_ctx, model->config().n_ctx_train), adaptive.get(), kv_type);
    const auto sparse_masks = apply_sparse_options(sparse_args, model->config(), gen.forward());
    const double load_seconds = load_timer.seconds(); // the file mapped, the tokenizer built, the weights placed

    StreamCallback print = [](std::string_view piece) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
        return true;
    };
    const GenerateResult r = gen.generate(ids, opt, json_out ? StreamCallback{} : print);
    const double pp = r.prompt_seconds > 0 ? r.prompt_ids.size() / r.prompt_seconds : 0;
    const double tg = r.gen_seconds > 0 && !r.output_ids.empty() ? r.output_ids.size() / r.gen_seconds : 0;
    if (json_out) {
        nlohmann::ordered_json j;
        j["prompt"] = prompt;
        j["text"] = r.text;
        j["prompt_ids"] = r.prompt_ids;
        j["output_ids"] = r.output_ids;
        j["stop_reason"] = r.stop_reason;
        j["stats"] = {{"prompt_tokens", r.prompt_ids.size()}, {"prompt_seconds", r.prompt_seconds}, {"prompt_tokens_per_s", pp},
                      {"generated_tokens", r.output_ids.size()}, {"generation_seconds", r.gen_seconds}, {"generation_tokens_per_s", tg},
                      {"load_seconds", load_seconds}, {"peak_rss_mib", peak_rss_mib()}};
        j["sampling"] = sampling_json(opt.sampling, recommended);
        j["head"] = {{"mode", head_mode}, {"adaptive_steps", r.head_adaptive_steps}, {"exact_steps", r.head_exact_steps},
                     {"fallbacks_to_exact", r.head_fallbacks}, {"head_seconds", r.head_seconds}};
        if (r.head_adaptive_steps > 0) {
            j["head"]["samples_per_step"] = static_cast<double>(r.head_samples) / r.head_adaptive_steps;
            j["head"]["mean_fraction"] = r.head_fraction_sum / r.head_adaptive_steps;
            j["head"]["calibration"] = calibration_note;
        }
        // invalid UTF-8 (a model may emit half a character at the very end) is replaced, not an exception
        std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
        std::printf("\n");
    }
    if (stats) {
        std::fprintf(stderr, "prompt: %zu tokens, %.1f tok/s | generation: %zu tokens, %.1f tok/s | stop: %s\n", r.prompt_ids.size(), pp,
                     r.output_ids.size(), tg, r.stop_reason.c_str());
        std::fprintf(stderr, "model load: %.2f s | peak memory: %.0f MiB\n", load_seconds, peak_rss_mib());
        std::fprintf(stderr, "sampling: %s | defaults: %s\n", describe_sampling(opt.sampling).c_str(), recommended.source().c_str());
        const int steps = r.head_adaptive_steps + r.head_exact_steps;
        if (opt.head == HeadMode::adaptive && steps > 0) {
            const double frac = r.head_adaptive_steps ? r.head_fraction_sum / r.head_adaptive_steps : 1.0;
            std::fprintf(stderr, "head: adaptive on %d of %d steps (%d fell back to exact), %.0f samples/step = %.4f of n*d (gain %.2fx), "
                                 "%.2f ms/step in the head, %s\n",
                         r.head_adaptive_steps, steps, r.head_fallbacks, r.head_adaptive_steps ? double(r.head_samples) / r.head_adaptive_steps : 0.0,
                         frac, frac > 0 ? 1 / frac : 0.0, 1e3 * r.head_seconds / steps, calibration_note.c_str());
        }
    }
    return 0;
}

} // namespace winnow::cli
