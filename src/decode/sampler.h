#pragma once
// The sampler chain: repetition penalty, temperature, top-k, top-p, min-p, then a seeded draw.
//
// Default order and semantics are Hugging Face generate()'s: the penalty divides positive / multiplies negative
// logits of every token already in the sequence (prompt included); then temperature -> top-k -> top-p -> min-p;
// temperature <= 0 means greedy (argmax after the penalty). `SamplerOrder::llama_cpp` applies llama.cpp's chain
// instead: penalty over the last `repeat_last_n` tokens -> top-k -> top-p -> min-p -> temperature last.
//
// The chain is split from its random numbers: SamplerChain::run picks a token from logits, history and a uniform u,
// and Sampler feeds it u from its seeded engine. The CPU backend's sample op (backend/cpu/sample_cpu.cpp) runs this
// same SamplerChain, so a device that samples (Backend::sample) is held to the host's chain by the op harness, and a
// generator that samples on the device draws u here and sends it along.
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "winnow/params.h"

namespace winnow {

// SamplerOrder and SamplingParams: winnow/params.h (public).

class SamplerChain {
public:
    explicit SamplerChain(const SamplingParams& p); // validates p
    // Picks the next token from raw logits, the token history (prompt + generated so far) and u in [0, 1), which only
    // the draw reads (greedy ignores it). Candidates are ordered by logit, descending, ties by lower id first.
    int32_t run(std::span<const float> logits, std::span<const int32_t> history, double u);
    // The probabilities the last draw was made from (after every filter), for tests.
    const std::vector<std::pair<int32_t, float>>& last_candidates() const { return cand_; }
    const SamplingParams& params() const { return p_; }

private:
    void apply_penalty(std::span<const int32_t> history);
    void temperature();
    void top_k();
    void top_p();
    void min_p();
    int32_t draw(double u);

    SamplingParams p_;
    std::vector<float> work_;
    std::vector<std::pair<int32_t, float>> cand_; // (id, logit) -> after draw(): (id, probability)
};

class Sampler {
public:
    explicit Sampler(const SamplingParams& p);
    // Picks the next token from raw logits given the token history (prompt + generated so far).
    int32_t sample(std::span<const float> logits, std::span<const int32_t> history);
    // True when a step consumes a uniform (every step that is not greedy).
    bool draws() const { return chain_.params().temperature > 0.0f; }
    // The uniform the next drawing step would use, consumed: sample(l, h) == SamplerChain::run(l, h, next_uniform())
    // for a drawing step. [0, 1), from the 53 high bits of the engine: the same on every platform.
    double next_uniform();
    // The probabilities the last draw was made from (after every filter), for tests.
    const std::vector<std::pair<int32_t, float>>& last_candidates() const { return chain_.last_candidates(); }

private:
    SamplerChain chain_;
    std::mt19937_64 rng_;
};

} // namespace winnow
