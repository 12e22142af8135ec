// Fine-tuning checkpoints (DIR/checkpoint.gguf, what `winnow finetune --resume` reads): the bytes as the checkpoint
// -> load_optimizer_state into a small AdamW (64 parameters) and the sampler-state parse run_finetune does; then,
// as --resume does, the checkpoint as a model and, when its shape is small, the trainer's Transformer::load.
#include <random>
#include <sstream>

#include "fuzz_util.h"
#include "model/model.h"
#include "train/adamw.h"
#include "train/checkpoint.h"
#include "train/transformer.h"

using namespace winnow;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const auto path = (fuzz::scratch_dir() / "checkpoint.gguf").string();
    fuzz::write_file(path, fuzz::as_view(data, size));
    fuzz::expect_only_winnow_errors([&] {
        const std::vector<train::ParamTensor> tensors = {{"w", 0, 48, 6, 8, true}, {"b", 48, 16, 1, 16, false}};
        train::AdamW<float> opt(train::AdamWConfig{}, tensors, 64);
        const train::CheckpointState st = train::load_optimizer_state(path, opt);
        std::mt19937_64 rng;
        std::istringstream rs(st.rng);
        rs >> rng;
        (void)rng();
    });
    fuzz::expect_only_winnow_errors([&] {
        auto m = LoadedModel::load(path);
        const ModelConfig& c = m->config();
        if (c.n_vocab > 512 || c.n_embd > 128 || c.n_layer > 4 || c.n_ff > 512 || c.n_ctx_train > 512) return;
        train::Transformer<float> t(train::TrainShape::from(c));
        t.load(*m);
    });
    return 0;
}
