// winnow bench finetune: the memory policies of the trainer side by side (../shared/specs/memory-lean.md §5).
//  1. Bytes kept for the backward per token per layer, from the trainer's own allocations, at GPT-2 124M layer
//     shapes (C 768, 12 heads, FF 3072) for T = 256 and 1024, beside the spec's formula for each policy, llm.c's
//     CPU layout and llm.c's CUDA recompute baselines; fp32 as allocated, and "bf16 accounting" (activations at 2
//     bytes; row statistics, log-sum-exps and approximation slots fp32; sign bits and ranks as kept).
//  2. A fixed fine-tune of a real model (default SmolLM2-135M) per policy: median step time, validation loss after
//     the same steps on the same batches, and the gradient cosine against the exact gradient on one batch.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include <fstream>

#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "cli/bench_stats.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "train/data.h"
#include "train/finetune.h"
#include "train/transformer.h"
#include "winnow/error.h"

namespace po = boost::program_options;

namespace winnow::cli {

namespace {

using train::AttentionPolicy;
using train::LinearPolicy;
using train::MemoryPolicy;

// The spec's per-token-per-layer bytes for a GPT-2 layer under `p` (fp32, s = 4): §1.3 / §1.4, with this trainer's
// approximation slots (2m + 1 fp32 per row) and ranks (uint8 for T <= 256, else uint16).
double formula_bytes(const MemoryPolicy& p, int C, int NH, int T) {
    if (p.checkpoint) return 4.0 * C;
    double floats = 16.0 * C, extra = 16; // 16C activations + 4 LayerNorm statistics
    if (p.recompute) floats -= 6.0 * C;    // ln1, ln2, GELU output
    const int asa = static_cast<int>(p.linear);
    const double covered[] = {0, 4.0 * C, 5.0 * C, 6.0 * C, 7.0 * C}; // fc_gelu; + ln2; + atty; + ln1
    if (asa) {
        double removed = covered[asa];
        if (p.recompute) removed -= asa >= 4 ? 6.0 * C : asa >= 2 ? 5.0 * C : 4.0 * C; // already gone with recompute
        floats -= removed;
        extra += covered[asa] / 8;
    }
    if (p.attention == AttentionPolicy::dense) extra += 4.0 * NH * T;
    if (p.attention == AttentionPolicy::lse) extra += 4.0 * NH;
    if (p.attention == AttentionPolicy::approx) extra += NH * ((2.0 * p.approx_m + 1) * 4 + T * (T <= 256 ? 1 : 2));
    return floats * 4 + extra;
}

struct Measured { double fp32 = 0, bf16 = 0; };

Measured measure(const MemoryPolicy& p, int T) {
    train::TrainShape s;
    s.arch = Arch::gpt2;
    s.n_vocab = 8; // the head is not part of a layer
    s.n_embd = 768;
    s.n_layer = 1;
    s.n_head = s.n_head_kv = 12;
    s.head_dim = 64;
    s.n_ff = 3072;
    s.n_ctx = 1024;
    train::Transformer<float> m(s, p);
    m.reserve(1, T);
    Measured r;
    for (const auto& t : m.saved_per_layer()) {
        r.fp32 += t.bytes;
        const bool fp32_kept = t.name.find("stats") != std::string::npos || t.name == "att_lse" || t.name == "att_approx_values" ||
                               t.name.find("sign") != std::string::npos || t.name == "att_approx_ranks";
        r.bf16 += fp32_kept ? t.bytes : t.bytes / 2.0;
    }
    r.fp32 /= T;
    r.bf16 /= T;
    return r;
}

extern "C" char** environ;

// Runs `winnow bench finetune --run-one ...` as a child process and returns its peak resident memory (MiB), so each
// policy's peak is measured alone (the fine-tune itself writes its results to a JSON file).
double run_child(const std::vector<std::string>& args) {
    std::vector<char*> argv;
    std::string self = "/proc/self/exe";
    argv.push_back(self.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid;
    if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0) throw Error(ErrorKind::io, "bench finetune: cannot start a child process");
    int status = 0;
    struct rusage ru {};
    if (wait4(pid, &status, 0, &ru) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        throw Error(ErrorKind::io, "bench finetune: the fine-tune child failed (status " + std::to_string(status) + ")");
    return ru.ru_maxrss / 1024.0; // Linux reports KiB
}

} // namespace

int cmd_bench_finetune(const std::vector<std::string>& args) {
    std::string model_arg, data = "/usr/share/common-licenses/GPL-3", policies_arg;
    std::string run_one, run_json;
    int steps = 20, seq = 64, batch = 4, val_windows = 16;
    double lr = 1e-4;
    bool json_out = false, bytes_only = false;
    po::options_description opts("winnow bench finetune options");
    opts.add_options()("help,h", "show this help")("model,m", po::value(&model_arg), "model to fine-tune (default SmolLM2-135M-Instruct)")(
        "data", po::value(&data)->default_value(data), "training text")("steps", po::value(&steps)->default_value(20), "steps per policy")(
        "seq", po::value(&seq)->default_value(64), "tokens per sequence")("batch", po::value(&batch)->default_value(4), "sequences per step")(
        "lr", po::value(&lr)->default_value(1e-4, "1e-4"), "peak learning rate")("val-windows", po::value(&val_windows)->default_value(16), "validation windows")(
        "policies", po::value(&policies_arg), "semicolon-separated --policy specs for the fine-tune (default: a fixed list)")(
        "bytes-only", po::bool_switch(&bytes_only), "only the GPT-2 bytes table")(
        "run-one", po::value(&run_one), "internal: fine-tune with this one policy and write the run to --run-json")("run-json", po::value(&run_json), "internal")("json", po::bool_switch(&json_out), "print the tables as JSON");
    po::variables_map vm;
    if (!parse_options(opts, args, vm)) return 0;

    if (!run_one.empty()) { // the child: one fine-tune, its results as JSON
        train::FinetuneOptions o;
        o.model_path = resolve_model_path(model_arg);
        o.data_path = data;
        o.write_files = false;
        o.steps = steps;
        o.seq = seq;
        o.batch = batch;
        o.adam.lr = lr;
        o.adam.warmup_steps = std::min(5, steps - 1);
        o.val_every = steps;
        o.val_windows = val_windows;
        o.policy = MemoryPolicy::parse(run_one);
        const auto r = train::run_finetune(o);
        std::vector<double> times;
        for (const auto& h : r.history) times.push_back(h.seconds);
        nlohmann::ordered_json j = {{"step_seconds_median", median(times)}, {"val_loss", r.final_val_loss}, {"step0_loss", r.history.front().loss},
                                    {"saved_bytes_per_token_layer", static_cast<double>(r.saved_bytes_per_layer) / (batch * seq)}};
        std::ofstream(run_json) << j.dump() << "\n";
        return 0;
    }
    std::vector<std::string> specs = {"attention=dense",
                                      "attention=lse",
                                      "recompute=on",
                                      "attention=lse,recompute=on",
                                      "checkpoint=on",
                                      "checkpoint=on,attention=lse",
                                      "attention=approx,m=5",
                                      "attention=approx,m=5,recompute=on",
                                      "linear=asa1",
                                      "linear=asa4",
                                      "attention=lse,linear=asa4,recompute=on"};
    if (!policies_arg.empty()) {
        specs.clear();
        std::stringstream ss(policies_arg);
        for (std::string s; std::getline(ss, s, ';');) specs.push_back(s);
    }
    nlohmann::ordered_json report;
    // --- 1. bytes at GPT-2 124M layer shapes
    const int C = 768, NH = 12;
    nlohmann::ordered_json bytes = nlohmann::ordered_json::array();
    for (int T : {256, 1024}) {
        for (const auto& spec : specs) {
            const MemoryPolicy p = MemoryPolicy::parse(spec);
            const Measured m = measure(p, T);
            const double f = formula_bytes(p, C, NH, T);
            bytes.push_back({{"T", T}, {"policy", p.describe()}, {"exact", !p.approximate()}, {"bytes_per_token_layer_fp32", m.fp32},
                             {"formula_fp32", f}, {"matches_formula", std::abs(m.fp32 - f) < 0.5}, {"bytes_per_token_layer_bf16", m.bf16},
                             {"vs_llmc_cpu_dense", m.fp32 / (4.0 * (18 * C + 4) + 8.0 * NH * T)}, {"vs_llmc_cuda_r1_bf16", m.bf16 / (24.0 * C + 16 + 4 * NH)}});
        }
    }
    report["gpt2_124m_layer_bytes"] = bytes;
    report["references"] = {{"llmc_cpu_dense_fp32_T256", 4.0 * (18 * C + 4) + 8.0 * NH * 256}, {"llmc_cpu_dense_fp32_T1024", 4.0 * (18 * C + 4) + 8.0 * NH * 1024},
                            {"llmc_cuda_recompute1_cudnn_bf16", 24.0 * C + 16 + 4 * NH}, {"llmc_cuda_recompute2_cudnn_bf16", 20.0 * C + 16 + 4 * NH}};

    // --- 2. fine-tune per policy
    nlohmann::ordered_json runs = nlohmann::ordered_json::array();
    if (!bytes_only) {
        const std::string model_path = resolve_model_path(model_arg);
        // the exact gradient on one batch, for the cosines
        auto model = LoadedModel::load(model_path);
        auto tok = Tokenizer::from_gguf(*model->gguf());
        const auto tokens = train::load_token_data(*tok, data, 0.1, seq);
        std::mt19937_64 rng(7);
        std::vector<int32_t> in, tg;
        train::sample_batch(tokens.train, batch, seq, rng, in, tg);
        std::vector<float> exact_grad;
        {
            train::Transformer<float> t(train::TrainShape::from(model->config()));
            t.load(*model);
            t.step(in.data(), tg.data(), batch, seq, true);
            exact_grad = t.grads();
        }
        double dense_time = 0, dense_loss = 0;
        for (const auto& spec : specs) {
            const MemoryPolicy p = MemoryPolicy::parse(spec);
            double cosine = 1;
            if (p.approximate()) {
                train::Transformer<float> t(train::TrainShape::from(model->config()), p);
                t.load(*model);
                t.step(in.data(), tg.data(), batch, seq, true);
                double ab = 0, aa = 0, bb = 0;
                for (size_t i = 0; i < exact_grad.size(); ++i) {
                    ab += static_cast<double>(exact_grad[i]) * t.grads()[i];
                    aa += static_cast<double>(exact_grad[i]) * exact_grad[i];
                    bb += static_cast<double>(t.grads()[i]) * t.grads()[i];
                }
                cosine = ab / std::sqrt(aa * bb);
            }
            std::fprintf(stderr, "fine-tune: %s\n", p.describe().c_str());
            char tmpl[] = "/tmp/winnow-bench-finetune-XXXXXX";
            const int fd = mkstemp(tmpl);
            if (fd < 0) throw Error(ErrorKind::io, "bench finetune: cannot create a temporary file");
            close(fd);
            const double peak_mib = run_child({"bench", "finetune", "--run-one", spec, "--run-json", tmpl, "-m", model_path, "--data", data, "--steps",
                                               std::to_string(steps), "--seq", std::to_string(seq), "--batch", std::to_string(batch), "--lr",
                                               std::to_string(lr), "--val-windows", std::to_string(val_windows)});
            nlohmann::json child;
            {
                std::ifstream in(tmpl);
                in >> child;
            }
            std::remove(tmpl);
            const double t = child["step_seconds_median"].get<double>(), val = child["val_loss"].get<double>();
            if (runs.empty()) dense_time = t, dense_loss = val;
            runs.push_back({{"policy", p.describe()}, {"exact", !p.approximate()}, {"saved_bytes_per_token_layer", child["saved_bytes_per_token_layer"]},
                            {"step_seconds_median", t}, {"step_time_vs_first", t / dense_time}, {"tokens_per_second", batch * seq / t},
                            {"step0_loss", child["step0_loss"]}, {"val_loss", val}, {"val_loss_vs_first", val / dense_loss},
                            {"gradient_cosine_vs_exact", cosine}, {"peak_rss_mib", peak_mib}});
        }
        report["finetune"] = {{"model", model_path}, {"data", data}, {"data_fnv1a", tokens.hash}, {"train_tokens", tokens.train.size()},
                              {"val_tokens", tokens.val.size()}, {"steps", steps}, {"seq", seq}, {"batch", batch}, {"lr", lr}, {"runs", runs}};
    }
    if (json_out) {
        std::cout << report.dump(2) << "\n";
        return 0;
    }
    std::printf("Bytes kept for the backward per token per layer, GPT-2 124M layer shapes (C = 768, 12 heads)\n\n");
    std::printf("| T | policy | exact | fp32 (allocated) | spec formula | bf16 accounting | / llm.c CPU dense | / llm.c CUDA r=1 (bf16) |\n| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |\n");
    for (const auto& b : bytes)
        std::printf("| %d | %s | %s | %.0f | %.0f%s | %.0f | %.3f | %.3f |\n", b["T"].get<int>(), b["policy"].get<std::string>().c_str(), b["exact"].get<bool>() ? "yes" : "no",
                    b["bytes_per_token_layer_fp32"].get<double>(), b["formula_fp32"].get<double>(), b["matches_formula"].get<bool>() ? "" : " (differs)",
                    b["bytes_per_token_layer_bf16"].get<double>(), b["vs_llmc_cpu_dense"].get<double>(), b["vs_llmc_cuda_r1_bf16"].get<double>());
    std::printf("\nllm.c CPU dense: %.0f (T 256), %.0f (T 1024) B fp32; llm.c CUDA bf16 + cuDNN: recompute 1 %.0f B, recompute 2 %.0f B\n",
                report["references"]["llmc_cpu_dense_fp32_T256"].get<double>(), report["references"]["llmc_cpu_dense_fp32_T1024"].get<double>(),
                report["references"]["llmc_cuda_recompute1_cudnn_bf16"].get<double>(), report["references"]["llmc_cuda_recompute2_cudnn_bf16"].get<double>());
    if (!runs.empty()) {
        std::printf("\nFine-tune of %s: %d steps, batch %d x %d tokens, lr %.1e, on %s\n\n", report["finetune"]["model"].get<std::string>().c_str(), steps, batch, seq,
                    lr, data.c_str());
        std::printf("| policy | exact | bytes / token / layer | step s (median) | vs first | tokens/s | step-0 loss | val loss | vs first | grad cosine | peak RSS MiB |\n"
                    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for (const auto& r : runs)
            std::printf("| %s | %s | %.0f | %.3f | %.2fx | %.0f | %.4f | %.4f | %.4f | %.4f | %.0f |\n", r["policy"].get<std::string>().c_str(), r["exact"].get<bool>() ? "yes" : "no",
                        r["saved_bytes_per_token_layer"].get<double>(), r["step_seconds_median"].get<double>(), r["step_time_vs_first"].get<double>(),
                        r["tokens_per_second"].get<double>(), r["step0_loss"].get<double>(), r["val_loss"].get<double>(), r["val_loss_vs_first"].get<double>(),
                        r["gradient_cosine_vs_exact"].get<double>(), r["peak_rss_mib"].get<double>());
    }
    return 0;
}

} // namespace winnow::cli
