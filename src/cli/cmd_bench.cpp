// winnow bench decode: llama-bench-style throughput rows. ppN = one prefill of N tokens; tgN = N single-token
// decode steps after an empty context (like llama-bench, no prompt); with --depth D both start after D cached
// tokens instead (llama-bench's -d: "pp512 @ d2048"), the context prefilled once and untimed. Each test runs once to warm up, then
// `reps` times; rows print mean ± sd of tokens/s and the weight bandwidth that implies. tg decodes greedily as generate
// does (ExactTokenPicker: on a backend that records, one launch per token); --json says which path it took (tg_path)
// and the tokens of its last run (tg_token_ids).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <filesystem>
#include <thread>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "backend/cpu/blas.h"
#include "backend/cpu/vec_dot.h"
#include "backend/device_weights.h"
#include "cli/commands.h"
#ifdef WINNOW_HAVE_CUDA
#include "backend/cuda/device.h"
#endif
#include "cli/device_options.h"
#include "cli/options.h"
#include "head/output_head.h"
#include "io/quant.h"
#include "decode/forward.h"
#include "decode/generator.h"
#include "decode/sampler.h"
#include "model/model.h"
#include "winnow/error.h"

namespace po = boost::program_options;

namespace winnow::cli {

namespace {

using Clock = std::chrono::steady_clock;

struct Row {
    std::string test;
    int n_tokens;
    double mean_ts, sd_ts;
};

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Deterministic token ids spread over the vocabulary (what they are does not change the work done).
std::vector<int32_t> bench_tokens(int n, int n_vocab) {
    std::vector<int32_t> ids(n);
    for (int i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((1 + 7919LL * i) % n_vocab);
    return ids;
}

double run_pp(Forward& f, head::ExactOutputHead& head, const std::vector<int32_t>& ids, int depth) {
    f.rewind(depth);
    const auto t0 = Clock::now();
    head.compute(f.eval_hidden(ids), {.k = 1}); // the first generated token: prefill is done when it is known
    return ids.size() / seconds_since(t0);
}

// Greedy decode as generate runs it, through the generator's ExactTokenPicker: where the backend has the sample op the
// exact head's product and the greedy pick run as the tail of each decode step (Forward::eval_with_tail), so on a
// backend that records a token is one upload, one replay of the whole step and a 4-byte download; else the layers,
// then the head's top-1. `seq` holds the context's tokens (depth of them) and gains the run's tokens; `ids` the ids
// the run generated.
double run_tg(Forward& f, ExactTokenPicker& picker, std::vector<int32_t>& seq, int n, int n_vocab, int depth, std::vector<int32_t>& ids) {
    f.rewind(depth);
    seq.resize(static_cast<size_t>(depth));
    seq.reserve(static_cast<size_t>(depth + n + 1));
    ids.assign(static_cast<size_t>(n), 0);
    const SamplingParams greedy; // temperature 0, no penalty
    Sampler sampler(greedy);
    int32_t tok = 1 % n_vocab;
    seq.push_back(tok);
    picker.begin(greedy, seq); // the same chain every run: a recorded step stays recorded
    const auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) {
        tok = picker.next(std::span<const int32_t>(&tok, 1), sampler, seq);
        ids[static_cast<size_t>(i)] = tok;
        seq.push_back(tok);
    }
    return n / seconds_since(t0);
}

Row summarize(const std::string& test, int n, const std::vector<double>& ts) {
    const double mean = std::accumulate(ts.begin(), ts.end(), 0.0) / ts.size();
    double var = 0.0;
    for (double v : ts) var += (v - mean) * (v - mean);
    const double sd = ts.size() > 1 ? std::sqrt(var / (ts.size() - 1)) : 0.0;
    return {test, n, mean, sd};
}

} // namespace

int cmd_bench(const std::vector<std::string>& args) {
    if (!args.empty() && args[0] == "head") return cmd_bench_head(std::vector<std::string>(args.begin() + 1, args.end()));
    if (!args.empty() && args[0] == "finetune") return cmd_bench_finetune(std::vector<std::string>(args.begin() + 1, args.end()));
    if (!args.empty() && args[0] == "attention") return cmd_bench_attention(std::vector<std::string>(args.begin() + 1, args.end()));
    if (!args.empty() && args[0] == "gemv") return cmd_bench_gemv(std::vector<std::string>(args.begin() + 1, args.end()));
    if (args.empty() || args[0] != "decode") {
        std::cerr << "usage: winnow bench decode -m MODEL [-p 512] [-n 128] [-r 5] [-t THREADS] [-d DEPTH] [--dot auto|q8|f32] [--device cpu|cuda] [--kv-type f32|f16|bf16] [--json]\n"
                     "       winnow bench head -m MODEL [--text FILE] [--window 64] [--queries 1000] [--tune 200] [--cache FILE] [--csv FILE] [--json]\n"
                     "       winnow bench head -m MODEL --device cuda [--k 1,40] [--formats stored,bf16,f32] [--synthetic-vocab 131072] [--json]\n"
                     "       winnow bench gemv [--types f32,q4_k,...] [--shapes 4096x4096,...] [--dot auto|q8|f32] [--device cpu|cuda] [--json]\n";
        return 2;
    }
    std::string model_arg;
    int n_prompt = 512, n_gen = 128, reps = 5, threads = 0, depth = 0;
    std::string dot;
    bool json_out = false;
    DeviceArgs device_args;
    po::options_description opts("winnow bench decode options");
    opts.add_options()("help,h", "show this help")("model,m", po::value(&model_arg), "model file or directory")(
        "n-prompt,p", po::value(&n_prompt)->default_value(512), "prompt tokens for the ppN test (0 skips it)")(
        "n-gen,n", po::value(&n_gen)->default_value(128), "generated tokens for the tgN test (0 skips it)")(
        "reps,r", po::value(&reps)->default_value(5), "measured repetitions after one warm-up")(
        "threads,t", po::value(&threads)->default_value(0), "CPU threads (0: all cores)")(
        "depth,d", po::value(&depth)->default_value(0), "tokens already in the context when each test starts (prefilled once, untimed)")("json", po::bool_switch(&json_out), "print rows as JSON");
    add_device_options(opts, device_args);
    add_dot_option(opts, dot);
    po::variables_map vm;
    if (!parse_options(opts, std::vector<std::string>(args.begin() + 1, args.end()), vm)) return 0;
    if (n_prompt < 0 || n_gen < 0 || reps < 1 || threads < 0 || depth < 0)
        throw Error(ErrorKind::invalid_argument, "--n-prompt/--n-gen/--depth must be >= 0, --reps >= 1, --threads >= 0");

    const BackendOptions backend_opts = backend_options(device_args, threads, dot_mode(dot));
    const GgmlType kv_type = kv_cache_type(device_args);

    auto model = LoadedModel::load(resolve_model_path(model_arg));
    const ModelConfig& c = model->config();
    const int n_ctx = depth + std::max(n_prompt, n_gen);
    if (n_ctx > c.n_ctx_train)
        throw Error(ErrorKind::invalid_argument, "depth + test length " + std::to_string(n_ctx) + " exceeds the model context " + std::to_string(c.n_ctx_train));
    auto backend = make_backend(backend_opts);
    Forward f(*model, *backend, std::max(n_ctx, 1), kv_type);
    head::ExactOutputHead head(*backend, f.weights().output, c.final_softcap);
    // the memory roofline of a device, measured in this run
    double roofline_gbps = 0;
#ifdef WINNOW_HAVE_CUDA
    if (backend->device() == Device::cuda) roofline_gbps = cuda::measure_copy_bandwidth_gbps(backend_opts.cuda_device);
#endif

    const std::vector<int32_t> context = bench_tokens(depth, c.n_vocab);
    if (depth > 0) { // the context every test starts from; the tests rewind to it
        f.reset();
        f.eval_hidden(context);
    }
    const std::string at_depth = depth > 0 ? " @ d" + std::to_string(depth) : "";
    std::vector<Row> rows;
    if (n_prompt > 0) {
        const auto ids = bench_tokens(n_prompt, c.n_vocab);
        run_pp(f, head, ids, depth);
        std::vector<double> ts;
        for (int r = 0; r < reps; ++r) ts.push_back(run_pp(f, head, ids, depth));
        rows.push_back(summarize("pp" + std::to_string(n_prompt) + at_depth, n_prompt, ts));
    }
    std::vector<int32_t> tg_ids; // the last run's tokens
    std::string tg_path;
    if (n_gen > 0) {
        ExactTokenPicker picker(f);
        std::vector<int32_t> seq = context;
        run_tg(f, picker, seq, n_gen, c.n_vocab, depth, tg_ids); // warm-up: its first steps record the step
        const int64_t replayed_before = f.replayed_steps();
        std::vector<double> ts;
        for (int r = 0; r < reps; ++r) ts.push_back(run_tg(f, picker, seq, n_gen, c.n_vocab, depth, tg_ids));
        rows.push_back(summarize("tg" + std::to_string(n_gen) + at_depth, n_gen, ts));
        const int64_t replayed = f.replayed_steps() - replayed_before, measured = static_cast<int64_t>(n_gen) * reps;
        if (!picker.on_device()) tg_path = "op by op: layers, then the exact head's top-1";
        else if (replayed == measured) tg_path = "one launch per token: layers, head product and greedy sample op replayed as one step";
        else if (replayed == 0) tg_path = "op by op: layers, head product and greedy sample op issued one by one";
        else tg_path = "mixed: " + std::to_string(replayed) + " of " + std::to_string(measured) + " measured steps replayed as one launch, the rest op by op";
    }

    // the bytes the backend reads: a preset type it lacks would be placed as F16 (place_weights; the CPU and CUDA backends take them all)
    const double bytes_per_token =
        static_cast<double>(model->matrix_bytes_per_token([&](GgmlType t) { return placed_as_f16(*backend, t); }));
    const bool preset_rows = model->has_matrix_type(is_preset_type);
    const int used_threads = threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (auto& r : rows) {
        nlohmann::ordered_json j;
        j["model"] = model->path();
        j["arch"] = c.architecture();
        j["weight_bytes_per_token"] = bytes_per_token;
        j["backend"] = backend->name();
        j["device"] = to_string(backend->device());
        j["kv_type"] = ggml_type_name(kv_type);
        j["dot"] = dot;
        // the fp32 prefill products are OpenBLAS's sgemm: whose kernels ran decides pp on the CPU (backend/cpu/blas.cpp)
        if (backend->device() == Device::cpu && r.test.rfind("pp", 0) == 0 && dot != "q8") j["blas_kernels"] = cpu::blas_kernels();
        // and decode's quantized rows run vec_dot's kernel, chosen at run time (backend/cpu/vec_dot.h)
        if (backend->device() == Device::cpu && r.test.rfind("tg", 0) == 0 && dot == "f32")
            j["dot_kernel"] = std::string(cpu::vec_dot_kernel_name(cpu::vec_dot_kernel_in_use())) +
                              (preset_rows ? std::string(" (") + cpu::vec_dot_kernel_name(cpu::VecDotKernel::baseline) + " for Q5_0, Q5_1 and the K-quants)" : "");
        j["threads"] = used_threads;
        j["depth"] = depth;
        j["test"] = r.test;
        j["tokens_per_s"] = r.mean_ts;
        j["tokens_per_s_sd"] = r.sd_ts;
        j["reps"] = reps;
        // decode steps as one recorded launch (CUDA graphs; WINNOW_CUDA_GRAPHS=0 turns them off)
        j["step_graphs"] = f.step_recording();
        j["replayed_steps"] = f.replayed_steps();
        if (!f.step_recording_error().empty()) j["step_recording_error"] = f.step_recording_error();
        // decode reads every weight matrix once per token; prefill reuses each row across the batch
        if (r.test.rfind("tg", 0) == 0) {
            j["tg_path"] = tg_path;
            j["tg_token_ids"] = tg_ids; // greedy from token 1 % n_vocab after the context: generate's tokens for that prompt
            j["us_per_token"] = 1e6 / r.mean_ts;
            j["weight_gb_per_s"] = r.mean_ts * bytes_per_token / 1e9;
            if (roofline_gbps > 0) {
                j["copy_roofline_gb_per_s"] = roofline_gbps;
                j["roofline_fraction"] = r.mean_ts * bytes_per_token / 1e9 / roofline_gbps;
            }
        }
        out.push_back(j);
    }
    if (json_out) {
        std::cout << out.dump(2) << "\n";
        return 0;
    }
    std::printf("| %-34s | %9s | %-7s | %4s | %7s | %13s | %20s | %8s |\n", "model", "size", "backend", "dot", "threads", "test", "t/s", "GB/s");
    std::printf("| %-34s | %9s | %-7s | %4s | %7s | %13s | %20s | %8s |\n", "---", "---", "---", "---", "---", "---", "---", "---");
    for (auto& j : out) {
        const std::string name = std::filesystem::path(j["model"].get<std::string>()).filename().string();
        char ts[64], gbs[32] = "";
        std::snprintf(ts, sizeof ts, "%.2f ± %.2f", j["tokens_per_s"].get<double>(), j["tokens_per_s_sd"].get<double>());
        if (j.contains("weight_gb_per_s")) std::snprintf(gbs, sizeof gbs, "%.2f", j["weight_gb_per_s"].get<double>());
        std::printf("| %-34s | %6.1f MB | %-7s | %4s | %7d | %13s | %20s | %8s |\n", name.substr(0, 34).c_str(), bytes_per_token / 1e6,
                    j["backend"].get<std::string>().c_str(), dot.c_str(), j["threads"].get<int>(), j["test"].get<std::string>().c_str(), ts, gbs);
    }
    for (auto& j : out)
        if (j.contains("blas_kernels")) {
            std::printf("\nprefill products: OpenBLAS sgemm, %s kernels\n", j["blas_kernels"].get<std::string>().c_str());
            break;
        }
    for (auto& j : out)
        if (j.contains("dot_kernel")) {
            std::printf("decode products (quantized rows): the %s kernel\n", j["dot_kernel"].get<std::string>().c_str());
            break;
        }
    return 0;
}

} // namespace winnow::cli
