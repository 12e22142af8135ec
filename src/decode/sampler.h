#pragma once
// The sampler chain: repetition penalty, temperature, top-k, top-p, min-p, then a seeded draw.
//
// Default order and semantics are Hugging Face generate()'s: the penalty divides positive / multiplies negative
// logits of every token already in the sequence (prompt included); then temperature -> top-k -> top-p -> min-p;
// temperature <= 0 means greedy (argmax after the penalty). `SamplerOrder::llama_cpp` applies llama.cpp's chain
// instead: penalty over the last `repeat_last_n` tokens -> top-k -> top-p -> min-p -> temperature last.
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "winnow/params.h"

namespace winnow {

// SamplerOrder and SamplingParams: winnow/params.h (public).

class Sampler {
public:
    explicit Sampler(const SamplingParams& p);
    // Picks the next token from raw logits given the token history (prompt + generated so far).
    int32_t sample(std::span<const float> logits, std::span<const int32_t> history);
    // The probabilities the last draw was made from (after every filter), for tests.
    const std::vector<std::pair<int32_t, float>>& last_candidates() const { return cand_; }

private:
    void apply_penalty(std::span<const int32_t> history);
    void temperature();
    void top_k();
    void top_p();
    void min_p();
    int32_t draw();
    double uniform(); // [0, 1), from the 53 high bits of the engine: the same on every platform

    SamplingParams p_;
    std::mt19937_64 rng_;
    std::vector<float> work_;
    std::vector<std::pair<int32_t, float>> cand_; // (id, logit) -> after draw(): (id, probability)
};

} // namespace winnow
