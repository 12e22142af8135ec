#pragma once
// The sampling settings `winnow generate` and `winnow chat` start from: the ones the model recommends for itself
// where it carries them, else winnow's defaults for text a person reads (llama-cli's, plus a mild repetition penalty).
//
// Where a model's recommendations live:
//   GGUF: general.sampling.{temp, top_k, top_p, min_p, penalty_repeat, penalty_last_n} (llama.cpp's keys,
//         gguf-py Keys.General.SAMPLING_*; llama.cpp applies them the same way, under its own command-line options);
//   HF checkpoint: generation_config.json beside config.json (temperature, top_k, top_p, min_p, repetition_penalty;
//         "do_sample": false means greedy, as in transformers' generate()).
// A value out of range is ignored (and listed), never an error: the rest of the model still loads.
// The library's GenerateOptions keep Hugging Face generate()'s plain defaults (greedy, no filters); only the CLI
// applies these.
#include <string>
#include <vector>

#include "winnow/params.h"

namespace winnow {

class LoadedModel;

struct SamplingDefaults {
    SamplingParams params;
    // Each field the model set, as "temp=0.7 (general.sampling.temp)"; empty when every value is winnow's.
    std::vector<std::string> from_model;
    // Keys the model carries with a value winnow cannot use, with the reason.
    std::vector<std::string> ignored;
    // One line for --help and `winnow info`: where the values come from.
    std::string source() const;
    // Whether the model set this field ("temp", "top-k", "top-p", "min-p", "repeat-penalty", "repeat-last-n").
    bool model_sets(const std::string& field) const;
};

// winnow's own defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05 (llama.cpp's common_params_sampling),
// repetition penalty 1.1 over the last 64 tokens (llama.cpp's window; its penalty is off by default, but small models
// such as SmolLM2-135M at Q4_1 fall into loops without one), llama.cpp's sampler order (temperature last).
SamplingParams builtin_sampling_defaults();

// The model's recommendations over winnow's defaults.
SamplingDefaults recommended_sampling(const LoadedModel& model);

} // namespace winnow
