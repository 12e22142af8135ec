#include "train/finetune.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "io/atomic_file.h"
#include "io/gguf.h"
#include "model/model.h"
#include "tokenizer/model_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/transformer.h"
#include "winnow/error.h"

namespace winnow::train {

namespace {

using Clock = std::chrono::steady_clock;

std::string settings_of(const FinetuneOptions& o, const std::string& data_hash) {
    std::ostringstream s;
    s.precision(17);
    s << "steps=" << o.steps << " seq=" << o.seq << " batch=" << o.batch << " lr=" << o.adam.lr << " min_lr_ratio=" << o.adam.min_lr_ratio
      << " warmup=" << o.adam.warmup_steps << " beta1=" << o.adam.beta1 << " beta2=" << o.adam.beta2 << " wd=" << o.adam.weight_decay
      << " clip=" << o.adam.grad_clip << " seed=" << o.seed << " val_fraction=" << o.val_fraction << " policy=" << o.policy.describe()
      << " data=" << data_hash;
    return s.str();
}

void check(const FinetuneOptions& o) {
    auto bad = [](const std::string& m) { return Error(ErrorKind::invalid_argument, m); };
    if (o.steps < 1) throw bad("--steps must be >= 1");
    if (o.seq < 2) throw bad("--seq must be >= 2");
    if (o.batch < 1) throw bad("--batch must be >= 1");
    if (o.val_every < 1 || o.save_every < 1 || o.val_windows < 1) throw bad("--val-every, --save-every and --val-windows must be >= 1");
    if (!(o.adam.lr > 0)) throw bad("--lr must be > 0");
    if (o.adam.warmup_steps < 0 || o.adam.warmup_steps >= o.steps) throw bad("--warmup must be in [0, steps)");
    if (!(o.adam.weight_decay >= 0) || !(o.adam.min_lr_ratio >= 0 && o.adam.min_lr_ratio <= 1)) throw bad("--weight-decay must be >= 0 and --min-lr-ratio in [0, 1]");
    if (o.write_files && o.out_dir.empty()) throw bad("--out DIR is required");
    if (!o.resume && o.model_path.empty()) throw bad("a model is required (-m MODEL)");
    if (o.data_path.empty()) throw bad("--data FILE is required");
}

} // namespace

FinetuneResult run_finetune(FinetuneOptions o, const ProgressFn& progress) {
    check(o);
    o.adam.total_steps = o.steps;
    namespace fs = std::filesystem;
    const std::string ckpt = (fs::path(o.out_dir) / "checkpoint.gguf").string(), csv = (fs::path(o.out_dir) / "loss.csv").string();
    if (o.resume && !fs::exists(ckpt)) throw Error(ErrorKind::io, "--resume: no checkpoint at '" + ckpt + "'");
    if (!o.resume && o.write_files && fs::exists(ckpt))
        throw Error(ErrorKind::invalid_argument, "'" + ckpt + "' exists: pass --resume to continue that run, or choose another --out");
    auto model = LoadedModel::load(o.resume ? ckpt : o.model_path);
    // checkpoints carry the source's GGUF metadata and tokenizer; a run that writes no files (benchmarks) takes any model
    if (!model->gguf() && o.write_files)
        throw Error(ErrorKind::unsupported, "finetune needs a GGUF model (its tokenizer and metadata go into the checkpoints); '" + model->path() + "' is not one");
    auto tok = model->gguf() ? Tokenizer::from_gguf(*model->gguf()) : load_model_tokenizer(*model);
    const TokenData data = load_token_data(*tok, o.data_path, o.val_fraction, o.seq);
    const std::string settings = settings_of(o, data.hash);

    Transformer<float> m(TrainShape::from(model->config()), o.policy);
    if (m.shape().arch == Arch::gpt2 && o.seq > m.shape().n_ctx) throw Error(ErrorKind::invalid_argument, "--seq exceeds the model's learned positions");
    m.load(*model);
    AdamW<float> opt(o.adam, m.tensors(), m.params().size());
    std::mt19937_64 rng(o.seed);
    FinetuneResult result;
    result.data_hash = data.hash;
    result.params = m.params().size();
    if (o.resume) {
        const CheckpointState st = load_optimizer_state(ckpt, opt);
        if (st.settings != settings)
            throw Error(ErrorKind::invalid_argument, "--resume: the checkpoint was made with other settings (" + st.settings + "); this run has (" + settings + ")");
        std::istringstream rs(st.rng);
        rs >> rng;
        if (!rs) throw Error(ErrorKind::format, "--resume: the checkpoint's sampler state is unreadable ('" + ckpt + "')");
        result.first_step = st.step;
        if (fs::exists(csv))
            for (const auto& r : read_loss_csv(csv))
                if (r.step <= st.step) result.history.push_back(r);
    }
    if (o.write_files) fs::create_directories(o.out_dir);

    std::vector<int32_t> inputs, targets, vin, vtg;
    size_t saved_bytes = 0, live_bytes = 0;
    auto validate = [&] {
        double total = 0;
        for (int k = 0; k < o.val_windows; ++k) {
            validation_window(data.val, k, o.val_windows, o.seq, vin, vtg);
            total += m.step(vin.data(), vtg.data(), 1, o.seq, false);
        }
        return total / o.val_windows;
    };
    auto save = [&](int step) {
        std::ostringstream r;
        r << rng;
        write_loss_csv(csv, result.history); // first: a resume drops rows past the checkpoint, never misses any
        save_checkpoint(ckpt, *model->gguf(), m, &opt, {step, r.str(), settings});
    };
    for (int step = result.first_step; step < o.steps; ++step) {
        const auto t0 = Clock::now();
        sample_batch(data.train, o.batch, o.seq, rng, inputs, targets);
        m.zero_grad();
        StepRecord rec;
        rec.step = step + 1;
        rec.loss = m.step(inputs.data(), targets.data(), o.batch, o.seq, true);
        rec.lr = learning_rate(o.adam, step);
        rec.grad_norm = opt.update(m.params(), m.grads(), step);
        saved_bytes = m.saved_bytes_per_layer(); // for this step's B x T (validation reallocates for B = 1)
        live_bytes = m.live_layer_bytes();
        rec.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        rec.tokens_per_second = o.batch * o.seq / rec.seconds;
        if (rec.step % o.val_every == 0 || rec.step == o.steps) rec.val_loss = validate();
        result.history.push_back(rec);
        if (progress) progress(rec, o);
        if (o.stop_after >= 0 && rec.step == o.stop_after) return result; // simulated kill: nothing after the last checkpoint survives
        if (o.write_files && (rec.step % o.save_every == 0 || rec.step == o.steps)) save(rec.step);
    }
    result.saved_bytes_per_layer = saved_bytes;
    result.live_layer_bytes = live_bytes;
    result.final_val_loss = result.history.empty() ? 0 : result.history.back().val_loss;
    if (!o.write_files) return result;
    save_checkpoint((fs::path(o.out_dir) / "model.gguf").string(), *model->gguf(), m, nullptr, {o.steps, "", settings});
    write_loss_png((fs::path(o.out_dir) / "loss.png").string(), result.history);
    return result;
}

void write_loss_csv(const std::string& path, const std::vector<StepRecord>& history) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp);
        out.precision(17); // round-trips a double exactly (a resumed history equals the original)
        out << "step,loss,val_loss,lr,grad_norm,tokens_per_second\n";
        for (const auto& r : history) {
            out << r.step << "," << r.loss << ",";
            if (!std::isnan(r.val_loss)) out << r.val_loss;
            out << "," << r.lr << "," << r.grad_norm << "," << r.tokens_per_second << "\n";
        }
        out.close();
        if (!out) throw Error(ErrorKind::io, "cannot write '" + tmp + "'");
    }
    io::commit_file(tmp, path);
}

std::vector<StepRecord> read_loss_csv(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw Error(ErrorKind::io, "cannot open '" + path + "'");
    std::vector<StepRecord> rows;
    std::string line;
    std::getline(in, line); // header
    while (std::getline(in, line)) {
        std::vector<std::string> f;
        std::stringstream ss(line);
        for (std::string x; std::getline(ss, x, ',');) f.push_back(x);
        if (f.size() < 6) throw Error(ErrorKind::format, "'" + path + "': malformed row '" + line + "'");
        try {
            StepRecord r;
            r.step = std::stoi(f[0]);
            r.loss = std::stod(f[1]);
            if (!f[2].empty()) r.val_loss = std::stod(f[2]);
            r.lr = std::stod(f[3]);
            r.grad_norm = std::stod(f[4]);
            r.tokens_per_second = std::stod(f[5]);
            rows.push_back(r);
        } catch (const std::exception&) {
            throw Error(ErrorKind::format, "'" + path + "': malformed row '" + line + "'");
        }
    }
    return rows;
}

} // namespace winnow::train
