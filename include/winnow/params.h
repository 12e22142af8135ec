#pragma once
// The plain parameter and result types of winnow's public API (winnow/winnow.h). The library uses these same types
// inside, so what the API documents is what runs. Defaults follow Hugging Face generate(): greedy, no filters.
#include <cstdint>
#include <string>
#include <vector>

namespace winnow {

// Where a model runs.
enum class Device { cpu, cuda };
const char* to_string(Device d);

// How the CPU multiplies activations with block-quantized weights (Q8_0, Q4_0, ..., the K-quants, IQ4):
//   automatic ("auto", the default of ModelParams and the CLI since 2026-12-07): the faster of the two per phase as
//        measured (bench/reports/dot-default-cpu.md): a decode step's single-token products as q8 (1.35-1.9x f32's
//        tg128), prefill batches as f32 (sgemm on decoded weight blocks: 1.3x the q8 tiles' pp512 on Q4_1 and Q8_0);
//   q8:  activations are quantized to 8-bit blocks and dotted with integer SIMD in every product that has such a
//        kernel, prefill included, as llama.cpp does (numerically what llama.cpp computes);
//   f32: activations stay fp32, weights are decoded in registers (the reference; closest to exact math).
// Float weights (F32, F16, BF16) always use the f32 path.
enum class CpuDotMode { f32, q8, automatic };
const char* to_string(CpuDotMode m);

// Sampler chain order. hf (default): penalty -> temperature -> top-k -> top-p -> min-p over the whole sequence;
// llama_cpp: penalty over the last repeat_last_n tokens -> top-k -> top-p -> min-p -> temperature last.
enum class SamplerOrder { hf, llama_cpp };

struct SamplingParams {
    float temperature = 0.0f;   // <= 0: greedy
    int top_k = 0;              // <= 0: off
    float top_p = 1.0f;         // >= 1: off
    float min_p = 0.0f;         // <= 0: off
    float repeat_penalty = 1.0f;
    int repeat_last_n = -1;     // tokens the penalty looks back over; -1: the whole sequence (HF)
    uint64_t seed = 0;
    SamplerOrder order = SamplerOrder::hf;
    void validate() const;      // throws winnow::Error(invalid_argument)
};

// AdaptiveSoftmax: the top token(s) and the top probability with an (epsilon, delta)-PAC guarantee from a fraction of
// the head's products. fudge factors come from `winnow calibrate-head` (1 = the theory constants).
// f_ln may exceed 1: the theory's normalizer assumes known variances and, with estimated ones, can miss its budget at
// f_ln = 1 (calibration then reads those arms further); kMaxFudgeNorm bounds it.
inline constexpr double kMaxFudgeNorm = 1000.0;
struct AdaptiveParams {
    double epsilon = 0.3;       // multiplicative error of p
    double delta = 0.01;        // failure probability
    float beta = 1.0f;          // temperature: logits are beta * <A_i, x>
    int k = 1;
    double fudge_best = 1.0;    // f_b in (0, 1]: 1 = the theory constants (uncalibrated)
    double fudge_norm = 1.0;    // f_ln in (0, kMaxFudgeNorm]
    double warmup_cap = 0.1;    // warm-up pulls at most this fraction of d' per arm (experiments: 0.1)
    uint64_t seed = 42;
};

// Which output head picks the next token. The adaptive head serves greedy decoding (its top-1) and pure top-k
// sampling (its top-k, whose logits it computes exactly, then temperature); any other sampler setting (top-p,
// min-p, repetition penalty, full-vocabulary sampling) needs every logit, so those steps fall back to the exact head
// and are counted as fallbacks.
enum class HeadMode { exact, adaptive };

struct GenerateOptions {
    int max_tokens = 64;
    SamplingParams sampling;
    HeadMode head = HeadMode::exact;
    AdaptiveParams adaptive;        // delta, epsilon, calibrated fudge factors
    std::vector<std::string> stop;  // stop strings; the text stops before the first one
    bool ignore_eos = false;
};

struct GenerateResult {
    std::string text;
    std::vector<int32_t> prompt_ids, output_ids;
    std::string stop_reason; // eos | stop_string | max_tokens | context | callback
    double prompt_seconds = 0, gen_seconds = 0;
    // output-head statistics
    int head_adaptive_steps = 0, head_exact_steps = 0, head_fallbacks = 0;
    int64_t head_samples = 0;      // adaptive: distinct (row, column) products, summed over steps
    double head_fraction_sum = 0;  // adaptive: sum over steps of samples / (n d')
    double head_seconds = 0;       // time in the output head stage (its products, top-k, and the sampler)
    // adaptive: where the fudge factors came from (ModelParams::head_calibration): "calibrated (PATH)", "theory
    // constants (...)" with the reason (e.g. no entry for this head and delta), or "the caller's (...)"; "" for exact
    std::string head_factors;
};

// One turn of a conversation, for the model's chat template: role "system", "user", "assistant" (or any role the
// template knows) and its text.
struct ChatMessage {
    std::string role;
    std::string content;
};

} // namespace winnow
