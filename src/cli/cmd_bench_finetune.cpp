// winnow bench finetune: the memory policies of the trainer side by side (../shared/specs/memory-lean.md §5).
//  1. Bytes kept for the backward per token per layer, from the trainer's own allocations, at GPT-2 124M layer
//     shapes (C 768, 12 heads, FF 3072, 12 layers) for T = 256 and 1024, beside the spec's formula for each policy,
//     llm.c's CPU layout and the llm.c CUDA configuration that keeps the same things (its recompute level: winnow's
//     recompute=on drops the norms and the GELU output, llm.c's level 2; off keeps both, level 0; its attention:
//     cuDNN's per-row statistics for lse, the bf16 T x T matrix for dense and approx). fp32 as allocated; bf16
//     COMPUTED from the allocations, not measured (activations at 2 bytes; row statistics, log-sum-exps and
//     approximation slots fp32; sign bits and ranks as kept). Per-layer checkpointing keeps each layer's input plus
//     one live layer, which is amortised over the 12 layers in the ratios.
//  2. A fixed fine-tune of a real model (default SmolLM2-135M; GGUF or HF safetensors) per policy: median step time,
//     validation loss after the same steps on the same batches, and for every policy the cosine of its full
//     gradient on one batch against the exact (dense) gradient.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>

#include <charconv>
#include <fstream>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "cli/bench_stats.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "io/atomic_file.h"
#include "model/model.h"
#include "tokenizer/model_tokenizer.h"
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

constexpr int kGpt2Layers = 12; // GPT-2 124M: what a checkpointing run's one live layer is amortised over

// The shortest decimal text that reads back as exactly `v` (std::to_string keeps 6 decimals: 1e-7 became "0.000000").
std::string round_trip(double v) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

// Writes `text` to `path`, checked (a full disk or a closed stdout is an error, never a silently short file);
// atomically (temporary + fsync + rename) unless the path is a scratch file only this process reads.
void write_checked(const std::string& path, const std::string& text, bool atomic) {
    const std::string tmp = atomic ? path + ".tmp" : path;
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) throw Error(ErrorKind::io, "bench finetune: cannot create '" + tmp + "'");
        out << text;
        out.close();
        if (!out) throw Error(ErrorKind::io, "bench finetune: cannot write '" + tmp + "' (disk full?)");
    }
    if (atomic) io::commit_file(tmp, path);
}

// The spec's per-token-per-layer bytes for a GPT-2 layer under `p` (fp32, s = 4): §1.3 / §1.4, with this trainer's
// approximation slots (2m + 1 fp32 per row) and ranks (uint8 for T <= 256, else uint16). Checkpointing: what stays
// per layer (its input); the live layer is added by the caller, amortised.
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

// llm.c's CUDA trainer (bf16, train_gpt2.cu) configured to keep what `p` keeps, per token per layer (spec §1.2):
// ln1 C, atty C, residual2 C, ln2 C, fch 4C, fch_gelu 4C, residual3 C, qkvr 3C at 2 bytes = 32C at recompute 0;
// recompute 1 drops fch_gelu (24C), recompute 2 also ln1 and ln2 (20C); + 16 B of LayerNorm statistics; attention:
// cuDNN keeps one fp32 statistic per row (4 NH), without cuDNN the bf16 T x T matrix (2 NH T).
struct LlmcMatch { int recompute = 0; bool cudnn = false; double bytes = 0; std::string name; };

LlmcMatch llmc_cuda_match(const MemoryPolicy& p, int C, int NH, int T) {
    LlmcMatch m;
    m.recompute = p.recompute ? 2 : 0; // winnow recomputes norms and GELU together: llm.c level 2; off keeps both: level 0
    m.cudnn = p.attention == AttentionPolicy::lse;
    m.bytes = (m.recompute == 2 ? 20.0 : 32.0) * C + 16 + (m.cudnn ? 4.0 * NH : 2.0 * NH * T);
    m.name = "recompute=" + std::to_string(m.recompute) + (m.cudnn ? ", cuDNN" : ", no cuDNN");
    return m;
}

struct Measured {
    double fp32 = 0, bf16 = 0;           // kept per layer (checkpointing: the layer's input)
    double live_fp32 = 0, live_bf16 = 0; // checkpointing: the one live layer (0 otherwise)
    double amortised_fp32() const { return fp32 + live_fp32 / kGpt2Layers; }
    double amortised_bf16() const { return bf16 + live_bf16 / kGpt2Layers; }
};

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
    if (p.checkpoint) { // the live layer is the same layer without checkpointing; its size must be what the trainer allocated
        MemoryPolicy inner = p;
        inner.checkpoint = false;
        const Measured live = measure(inner, T);
        if (std::abs(live.fp32 * T - static_cast<double>(m.live_layer_bytes())) > 0.5)
            throw Error(ErrorKind::invalid_argument, "bench finetune: the checkpointing trainer's live layer (" + std::to_string(m.live_layer_bytes()) +
                                                         " B) is not the layer without checkpointing (" + std::to_string(live.fp32 * T) + " B)");
        r.live_fp32 = live.fp32;
        r.live_bf16 = live.bf16;
    }
    return r;
}

extern "C" char** environ;

// This process's peak resident memory in MiB (VmHWM; 0 where /proc is missing). Read by the child itself: the
// max RSS that wait4 reports for a spawned child also counts the parent's resident memory at the spawn (Linux
// records the old address space's high-water mark at exec), which for a small model is most of the number.
double own_peak_rss_mib() {
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0; // "VmHWM:   123456 kB"
    return 0;
}

// Runs `winnow bench finetune --run-one ...` as a child process, so each policy's peak memory is measured alone (the
// fine-tune itself writes its results, its own peak included, to a JSON file).
void run_child(const std::vector<std::string>& args) {
    std::vector<char*> argv;
    std::string self = "/proc/self/exe";
    argv.push_back(self.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid;
    if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0) throw Error(ErrorKind::io, "bench finetune: cannot start a child process");
    int status = 0;
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        throw Error(ErrorKind::io, "bench finetune: the fine-tune child failed (status " + std::to_string(status) + ")");
}

} // namespace

int cmd_bench_finetune(const std::vector<std::string>& args) {
    std::string model_arg, data = "/usr/share/common-licenses/GPL-3", policies_arg;
    std::string run_one, run_json, out_path;
    int steps = 20, seq = 64, batch = 4, val_windows = 16;
    double lr = 1e-4;
    bool json_out = false, bytes_only = false;
    po::options_description opts("winnow bench finetune options");
    opts.add_options()("help,h", "show this help")("model,m", po::value(&model_arg), "model to fine-tune (default SmolLM2-135M-Instruct)")(
        "data", po::value(&data)->default_value(data), "training text")("steps", po::value(&steps)->default_value(20), "steps per policy")(
        "seq", po::value(&seq)->default_value(64), "tokens per sequence")("batch", po::value(&batch)->default_value(4), "sequences per step")(
        "lr", po::value(&lr)->default_value(1e-4, "1e-4"), "peak learning rate")("val-windows", po::value(&val_windows)->default_value(16), "validation windows")(
        "policies", po::value(&policies_arg), "semicolon-separated --policy specs for the fine-tune (default: a fixed list)")(
        "bytes-only", po::bool_switch(&bytes_only), "only the GPT-2 bytes table")("out,o", po::value(&out_path), "write the JSON report to FILE (atomically)")(
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
                                    {"saved_bytes_per_token_layer", static_cast<double>(r.saved_bytes_per_layer) / (batch * seq)},
                                    {"live_layer_bytes_per_token", static_cast<double>(r.live_layer_bytes) / (batch * seq)},
                                    {"peak_rss_mib", own_peak_rss_mib()}};
        write_checked(run_json, j.dump() + "\n", false);
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
        specs = list_items(policies_arg, ';');
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
            MemoryPolicy inner = p;
            inner.checkpoint = false;
            const double f_amortised = p.checkpoint ? f + formula_bytes(inner, C, NH, T) / kGpt2Layers : f;
            const LlmcMatch llmc = llmc_cuda_match(inner, C, NH, T); // llm.c has no checkpointing: the layer it recomputes
            bytes.push_back({{"T", T}, {"policy", p.describe()}, {"exact", !p.approximate()}, {"bytes_per_token_layer_fp32", m.fp32},
                             {"formula_fp32", f}, {"matches_formula", std::abs(m.fp32 - f) < 0.5},
                             {"live_layer_bytes_per_token_fp32", m.live_fp32}, {"layers_amortised_over", p.checkpoint ? kGpt2Layers : 1},
                             {"bytes_per_token_layer_amortised_fp32", m.amortised_fp32()}, {"formula_amortised_fp32", f_amortised},
                             {"bytes_per_token_layer_bf16_computed", m.bf16}, {"bytes_per_token_layer_amortised_bf16_computed", m.amortised_bf16()},
                             {"vs_llmc_cpu_dense", m.amortised_fp32() / (4.0 * (18 * C + 4) + 8.0 * NH * T)},
                             {"llmc_cuda_match", llmc.name}, {"llmc_cuda_match_bf16", llmc.bytes},
                             {"vs_llmc_cuda_match_bf16", m.amortised_bf16() / llmc.bytes}});
        }
    }
    report["gpt2_124m_layer_bytes"] = bytes;
    report["references"] = {{"llmc_cpu_dense_fp32_T256", 4.0 * (18 * C + 4) + 8.0 * NH * 256}, {"llmc_cpu_dense_fp32_T1024", 4.0 * (18 * C + 4) + 8.0 * NH * 1024},
                            {"llmc_cuda_recompute0_cudnn_bf16", 32.0 * C + 16 + 4 * NH}, {"llmc_cuda_recompute1_cudnn_bf16", 24.0 * C + 16 + 4 * NH},
                            {"llmc_cuda_recompute2_cudnn_bf16", 20.0 * C + 16 + 4 * NH},
                            {"llmc_cuda_recompute0_no_cudnn_bf16_T256", 32.0 * C + 16 + 2.0 * NH * 256},
                            {"llmc_cuda_recompute2_no_cudnn_bf16_T256", 20.0 * C + 16 + 2.0 * NH * 256},
                            {"llmc_cuda_recompute0_no_cudnn_bf16_T1024", 32.0 * C + 16 + 2.0 * NH * 1024},
                            {"llmc_cuda_recompute2_no_cudnn_bf16_T1024", 20.0 * C + 16 + 2.0 * NH * 1024}};

    // --- 2. fine-tune per policy
    nlohmann::ordered_json runs = nlohmann::ordered_json::array();
    if (!bytes_only) {
        const std::string model_path = resolve_model_path(model_arg);
        // the exact gradient on one batch, for the cosines
        auto model = LoadedModel::load(model_path);
        auto tok = load_model_tokenizer(*model); // GGUF or an HF checkpoint's tokenizer files
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
            double cosine = 0; // measured for every policy: an exact one must come out at 1 up to rounding
            {
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
            run_child({"bench", "finetune", "--run-one", spec, "--run-json", tmpl, "-m", model_path, "--data", data, "--steps",
                                               std::to_string(steps), "--seq", std::to_string(seq), "--batch", std::to_string(batch), "--lr",
                                               round_trip(lr), "--val-windows", std::to_string(val_windows)});
            nlohmann::json child;
            try {
                std::ifstream in(tmpl);
                if (!in) throw Error(ErrorKind::io, "bench finetune: cannot read the child's results '" + std::string(tmpl) + "'");
                in >> child;
            } catch (const nlohmann::json::exception& e) {
                std::remove(tmpl);
                throw Error(ErrorKind::format, "bench finetune: the child's results '" + std::string(tmpl) + "' are unreadable: " + e.what());
            }
            std::remove(tmpl);
            const double t = child["step_seconds_median"].get<double>(), val = child["val_loss"].get<double>(), peak_mib = child["peak_rss_mib"].get<double>();
            if (runs.empty()) dense_time = t, dense_loss = val;
            const double kept = child["saved_bytes_per_token_layer"].get<double>(), live = child["live_layer_bytes_per_token"].get<double>();
            const int n_layer = model->config().n_layer;
            runs.push_back({{"policy", p.describe()}, {"exact", !p.approximate()}, {"saved_bytes_per_token_layer", kept},
                            {"live_layer_bytes_per_token", live}, {"n_layer", n_layer}, {"amortised_bytes_per_token_layer", kept + live / n_layer},
                            {"step_seconds_median", t}, {"step_time_vs_first", t / dense_time}, {"tokens_per_second", batch * seq / t},
                            {"step0_loss", child["step0_loss"]}, {"val_loss", val}, {"val_loss_vs_first", val / dense_loss},
                            {"gradient_cosine_vs_exact", cosine}, {"gradient_cosine_measured", true}, {"peak_rss_mib", peak_mib},
                            {"peak_rss_source", "the child's own VmHWM"}});
        }
        report["finetune"] = {{"model", model_path}, {"data", data}, {"data_fnv1a", tokens.hash}, {"train_tokens", tokens.train.size()},
                              {"val_tokens", tokens.val.size()}, {"steps", steps}, {"seq", seq}, {"batch", batch}, {"lr", lr}, {"runs", runs}};
    }
    if (!out_path.empty()) write_checked(out_path, report.dump(2) + "\n", true);
    auto flush_stdout = [] {
        std::cout.flush();
        if (!std::cout || std::fflush(stdout) != 0) throw Error(ErrorKind::io, "bench finetune: cannot write the report to stdout");
    };
    if (json_out) {
        std::cout << report.dump(2) << "\n";
        flush_stdout();
        return 0;
    }
    std::printf("Bytes kept for the backward per token per layer, GPT-2 124M layer shapes (C = 768, 12 heads, 12 layers); bf16 computed, not measured\n\n");
    std::printf("| T | policy | exact | fp32 (allocated) | spec formula | + live layer / 12 | bf16 (computed) | / llm.c CPU dense | llm.c CUDA match | / it (bf16) |\n"
                "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |\n");
    for (const auto& b : bytes)
        std::printf("| %d | %s | %s | %.0f | %.0f%s | %.0f | %.0f | %.3f | %s | %.3f |\n", b["T"].get<int>(), b["policy"].get<std::string>().c_str(),
                    b["exact"].get<bool>() ? "yes" : "no", b["bytes_per_token_layer_fp32"].get<double>(), b["formula_fp32"].get<double>(),
                    b["matches_formula"].get<bool>() ? "" : " (differs)", b["bytes_per_token_layer_amortised_fp32"].get<double>(),
                    b["bytes_per_token_layer_amortised_bf16_computed"].get<double>(), b["vs_llmc_cpu_dense"].get<double>(),
                    b["llmc_cuda_match"].get<std::string>().c_str(), b["vs_llmc_cuda_match_bf16"].get<double>());
    std::printf("\nllm.c CPU dense: %.0f (T 256), %.0f (T 1024) B fp32; llm.c CUDA bf16 + cuDNN: recompute 0 %.0f B, 1 %.0f B, 2 %.0f B\n",
                report["references"]["llmc_cpu_dense_fp32_T256"].get<double>(), report["references"]["llmc_cpu_dense_fp32_T1024"].get<double>(),
                report["references"]["llmc_cuda_recompute0_cudnn_bf16"].get<double>(), report["references"]["llmc_cuda_recompute1_cudnn_bf16"].get<double>(),
                report["references"]["llmc_cuda_recompute2_cudnn_bf16"].get<double>());
    if (!runs.empty()) {
        std::printf("\nFine-tune of %s: %d steps, batch %d x %d tokens, lr %.1e, on %s\n\n", report["finetune"]["model"].get<std::string>().c_str(), steps, batch, seq,
                    lr, data.c_str());
        std::printf("| policy | exact | bytes / token / layer (+ live layer / layers) | step s (median) | vs first | tokens/s | step-0 loss | val loss | vs first | grad cosine | peak RSS MiB |\n"
                    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for (const auto& r : runs)
            std::printf("| %s | %s | %.0f | %.3f | %.2fx | %.0f | %.4f | %.4f | %.4f | %.4f | %.0f |\n", r["policy"].get<std::string>().c_str(), r["exact"].get<bool>() ? "yes" : "no",
                        r["amortised_bytes_per_token_layer"].get<double>(), r["step_seconds_median"].get<double>(), r["step_time_vs_first"].get<double>(),
                        r["tokens_per_second"].get<double>(), r["step0_loss"].get<double>(), r["val_loss"].get<double>(), r["val_loss_vs_first"].get<double>(),
                        r["gradient_cosine_vs_exact"].get<double>(), r["peak_rss_mib"].get<double>());
    }
    flush_stdout();
    return 0;
}

} // namespace winnow::cli
