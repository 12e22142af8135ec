// winnow finetune: full fine-tuning on a text file with AdamW, a memory policy, validation, atomic checkpoints
// that `winnow generate` loads, and --resume after an interruption.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include <unistd.h>

#include <boost/program_options.hpp>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cli/commands.h"
#include "cli/options.h"
#include "train/finetune.h"
#include "winnow/error.h"

namespace po = boost::program_options;

namespace winnow::cli {

namespace {

std::string duration(double s) {
    char buf[32];
    if (s >= 3600) std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s / 3600), static_cast<int>(std::fmod(s, 3600) / 60));
    else if (s >= 60) std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s / 60), static_cast<int>(std::fmod(s, 60)));
    else std::snprintf(buf, sizeof buf, "%.0fs", s);
    return buf;
}

} // namespace

int cmd_finetune(const std::vector<std::string>& args) {
    train::FinetuneOptions o;
    std::string model_arg, policy = "attention=dense,linear=full,recompute=off";
    int threads = 0;
    po::options_description opts("winnow finetune options");
    opts.add_options()("help,h", "show this help")("model,m", po::value(&model_arg), "model to fine-tune (.gguf); default: SmolLM2-135M-Instruct")(
        "data", po::value(&o.data_path), "UTF-8 text to train on (the last --val-fraction is held out)")(
        "out", po::value(&o.out_dir), "output directory: checkpoint.gguf, loss.csv, model.gguf, loss.png")(
        "resume", po::bool_switch(&o.resume), "continue the run whose checkpoint is in --out (same settings)")(
        "steps", po::value(&o.steps)->default_value(100), "optimizer steps")("seq", po::value(&o.seq)->default_value(64), "tokens per sequence")(
        "batch", po::value(&o.batch)->default_value(4), "sequences per step")("lr", po::value(&o.adam.lr)->default_value(1e-4, "1e-4"), "peak learning rate")(
        "warmup", po::value(&o.adam.warmup_steps)->default_value(10), "linear warm-up steps, then cosine decay")(
        "min-lr-ratio", po::value(&o.adam.min_lr_ratio)->default_value(0.1, "0.1"), "the cosine ends at lr * this")(
        "weight-decay", po::value(&o.adam.weight_decay)->default_value(0.1, "0.1"), "AdamW decoupled weight decay (matrices and embeddings)")(
        "grad-clip", po::value(&o.adam.grad_clip)->default_value(1.0, "1.0"), "clip the global gradient norm (0: off)")(
        "policy", po::value(&policy)->default_value(policy),
        "memory policy: attention=dense|lse|approx, m=N, linear=full|asa1|asa2|asa3|asa4, recompute=on|off")(
        "val-every", po::value(&o.val_every)->default_value(25), "validation loss every K steps")(
        "val-windows", po::value(&o.val_windows)->default_value(8), "validation windows of --seq tokens")(
        "val-fraction", po::value(&o.val_fraction)->default_value(0.1, "0.1"), "fraction of the text held out for validation")(
        "save-every", po::value(&o.save_every)->default_value(50), "checkpoint every S steps (and at the end)")(
        "seed", po::value(&o.seed)->default_value(1), "seed of the batch sampler")("threads,t", po::value(&threads)->default_value(0), "CPU threads (0 = all cores)")(
        "stop-after", po::value(&o.stop_after)->default_value(-1), "testing: stop after this step without saving, as if killed");
    po::variables_map vm;
    if (!parse_options(opts, args, vm)) return 0;
    if (threads < 0) throw Error(ErrorKind::invalid_argument, "--threads must be >= 0");
#ifdef _OPENMP
    if (threads > 0) omp_set_num_threads(threads);
#endif
    o.policy = train::MemoryPolicy::parse(policy);
    if (!o.resume) o.model_path = resolve_model_path(model_arg);

    const bool tty = isatty(fileno(stderr));
    const auto t0 = std::chrono::steady_clock::now();
    int first = -1;
    auto progress = [&](const train::StepRecord& r, const train::FinetuneOptions& opt) {
        if (first < 0) first = r.step - 1;
        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double eta = elapsed / (r.step - first) * (opt.steps - r.step);
        const int width = 24, filled = width * r.step / opt.steps;
        const std::string bar = std::string(filled, '=') + (filled < width ? ">" : "") + std::string(std::max(0, width - filled - 1), ' ');
        const bool validated = !std::isnan(r.val_loss);
        if (tty || validated || r.step == opt.steps || r.step % 10 == 0)
            std::fprintf(stderr, "%sstep %d/%d [%s] loss %.4f | lr %.2e | %.0f tok/s | ETA %s%s", tty ? "\r\033[K" : "", r.step, opt.steps, bar.c_str(), r.loss,
                         r.lr, r.tokens_per_second, duration(eta).c_str(), tty && !validated ? "" : "\n");
        if (validated) std::fprintf(stderr, "  validation: loss %.4f, perplexity %.2f\n", r.val_loss, std::exp(r.val_loss));
    };
    const auto result = train::run_finetune(o, progress);
    if (o.stop_after >= 0 && (result.history.empty() || result.history.back().step == o.stop_after)) {
        std::fprintf(stderr, "stopped after step %d without saving (--stop-after)\n", o.stop_after);
        return 3;
    }
    std::fprintf(stderr, "done: %zu parameters, %s; saved for backward %.1f KiB per layer (policy %s)\n", result.params,
                 result.first_step ? ("resumed at step " + std::to_string(result.first_step)).c_str() : "from the start",
                 result.saved_bytes_per_layer / 1024.0, o.policy.describe().c_str());
    std::printf("%s\n", (std::filesystem::path(o.out_dir) / "model.gguf").c_str());
    return 0;
}

} // namespace winnow::cli
