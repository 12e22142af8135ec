#pragma once
// Fine-tuning checkpoints: one GGUF file that `winnow generate` loads as a model — the source model's metadata and
// tokenizer, every weight in F32 under the architecture's GGUF names — plus what a resumed run needs: the AdamW
// moments (tensors train.adam_m / train.adam_v, which winnow's loader ignores; llama.cpp rejects files with extra
// tensors, so the final DIR/model.gguf, written without them, is the one to take elsewhere) and the step, the
// data generator's state and the run's settings (metadata keys winnow.train.*). Written to a temporary file and
// renamed, so a killed run leaves either the previous checkpoint or the new one, never a torn file.
#include <string>

#include "io/gguf.h"
#include "train/adamw.h"
#include "train/transformer.h"

namespace winnow::train {

struct CheckpointState {
    int step = 0;             // optimizer steps taken
    std::string rng;          // the batch sampler's mt19937_64 state (its text form)
    std::string settings;     // the run's settings that must not change across a resume
};

// opt may be null (a final model without optimizer state).
void save_checkpoint(const std::string& path, const io::GgufFile& source, const Transformer<float>& model, const AdamW<float>* opt,
                     const CheckpointState& state);

// Reads the optimizer moments and the state of a checkpoint written by save_checkpoint (the weights load through
// Model::load + Transformer::load). Throws winnow::Error when the file has no optimizer state or sizes differ.
CheckpointState load_optimizer_state(const std::string& path, AdamW<float>& opt);

} // namespace winnow::train
