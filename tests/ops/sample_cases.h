#pragma once
// The sample op (Backend::sample) against the host's sampler chain: logits of several shapes (random, many exact
// ties, near-ties one ulp apart, -inf entries), every combination of the chain's parameters that changes a decision
// (both orders, greedy, temperatures, top-k, top-p, min-p, penalty windows) and many uniforms u. Used by the op
// harness (tests/ops/sample_cases.cpp: every backend against SamplerChain) and the GPU test (tests/gpu: CUDA against
// the CPU backend's op). Header-only so that both test programs compile it.
//
// A device adds the double masses of top-p and the draw in another order than the host, so its token may differ
// where u lies on a cumulative boundary to within rounding; the comparison accepts the reference's token at u +- 1e-12
// and counts those cases (a correct device hits them about never: they are reported, and must be few).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "decode/sampler.h"

namespace winnow::test::sampling {

enum class Shape { random, ties, near_ties, with_neg_inf, merged_by_temperature, four_equal, all_neg_inf, pos_inf, nan_first, nan_scattered, nan_ties, all_nan };
// NaN logits: only greedy is defined for them (std::max_element's answer, below); the host's sorts and sums are not.
inline bool greedy_only(Shape s) { return s == Shape::nan_first || s == Shape::nan_scattered || s == Shape::nan_ties || s == Shape::all_nan; }
inline const char* name(Shape s) {
    switch (s) {
    case Shape::random: return "random";
    case Shape::ties: return "ties";
    case Shape::near_ties: return "near_ties";
    case Shape::with_neg_inf: return "neg_inf";
    case Shape::merged_by_temperature: return "merged_by_temperature";
    case Shape::four_equal: return "four_equal";
    case Shape::all_neg_inf: return "all_neg_inf";
    case Shape::pos_inf: return "pos_inf";
    case Shape::nan_first: return "nan_first";
    case Shape::nan_scattered: return "nan_scattered";
    case Shape::nan_ties: return "nan_ties";
    case Shape::all_nan: return "all_nan";
    }
    return "?";
}

inline std::vector<float> make_logits(Shape shape, int64_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, 3.0f);
    std::vector<float> l(static_cast<size_t>(n));
    for (auto& x : l) x = nd(rng);
    std::uniform_int_distribution<int64_t> any(0, n - 1);
    switch (shape) {
    case Shape::random: break;
    case Shape::ties: // a few levels only: large tie groups everywhere, a 5-way tie at the top
        for (auto& x : l) x = std::round(x);
        for (int i = 0; i < 5; ++i) l[static_cast<size_t>(any(rng))] = 12.0f;
        break;
    case Shape::near_ties: // pairs one ulp apart at the top (order by value, not id); division by a temperature may merge them
        for (int i = 0; i < 8; ++i) {
            const float v = 9.0f + 0.25f * static_cast<float>(i % 3);
            l[static_cast<size_t>(any(rng))] = v;
            l[static_cast<size_t>(any(rng))] = std::nextafter(v, 100.0f);
            l[static_cast<size_t>(any(rng))] = std::nextafter(v, -100.0f);
        }
        break;
    case Shape::with_neg_inf:
        for (int i = 0; i < 50 && i < n / 2; ++i) l[static_cast<size_t>(any(rng))] = -INFINITY;
        l[0] = -0.0f; // -0 and +0 are one value
        l[n > 1 ? 1 : 0] = 0.0f;
        break;
    case Shape::merged_by_temperature: {
        // At the top, for each temperature of chains(), a pair one ulp apart (the larger value at the larger id) that
        // the division by that temperature makes equal: llama.cpp's order then depends on whether top-p sorted first
        for (auto& x : l) x = std::min(x, 5.0f);
        int64_t at = 0;
        float level = 12.0f;
        for (float t : {0.7f, 1.5f, 0.8f, 1.3f, 3.0f, 0.6f}) { // (1.0 merges nothing)
            float v = level;
            for (int step = 0; step < 100000 && v / t != std::nextafter(v, 100.0f) / t; ++step) v = std::nextafter(v, 100.0f);
            if (at + 2 * 37 + 1 >= n) break;
            level -= 0.4f;
            if (v / t != std::nextafter(v, 100.0f) / t) continue; // none near this level
            l[static_cast<size_t>(at += 37)] = v;
            l[static_cast<size_t>(at += 37)] = std::nextafter(v, 100.0f);
        }
        break;
    }
    case Shape::four_equal: // probabilities of exactly 1/4: top-p's masses meet 1 - top_p and top_p exactly (0.5)
        for (auto& x : l) x = -INFINITY;
        for (int64_t i = 0; i < 4 && i < n; ++i) l[static_cast<size_t>((i * 7919 + 11) % n)] = 2.5f;
        break;
    case Shape::all_neg_inf: // a fully masked row: no probability anywhere (the draw must still answer a valid id)
        for (auto& x : l) x = -INFINITY;
        break;
    case Shape::pos_inf: // an overflowed logit: its mass is NaN (inf - inf), so no cumulative mass exceeds u
        l[static_cast<size_t>(any(rng))] = INFINITY;
        break;
    // NaN logits for greedy, which is std::max_element: it keeps its first element until a later one compares
    // greater, so a NaN in slot 0 is the answer whatever follows (nothing compares greater than NaN), and elsewhere a
    // NaN never wins and never blocks (the first maximum of the other values)
    case Shape::nan_first: // the answer is 0, though the largest value lies further on
        l[0] = NAN;
        l[static_cast<size_t>(n > 1 ? n - 1 : 0)] = 20.0f;
        for (int i = 0; i < 10; ++i) l[static_cast<size_t>(any(rng))] = NAN;
        break;
    case Shape::nan_scattered: { // NaNs around the maximum and elsewhere, none in slot 0
        for (int i = 0; i < 50 && i < n / 2; ++i) l[static_cast<size_t>(any(rng))] = NAN;
        const int64_t top = n / 2;
        l[static_cast<size_t>(top)] = 20.0f;
        if (top > 1) l[static_cast<size_t>(top - 1)] = NAN;
        if (top + 1 < n) l[static_cast<size_t>(top + 1)] = NAN;
        l[0] = -1.0f;
        break;
    }
    case Shape::nan_ties: // ties at the top with NaNs between them: the first of the tie, NaNs skipped
        for (auto& x : l) x = std::round(x);
        for (int i = 0; i < 5; ++i) l[static_cast<size_t>(any(rng))] = 12.0f;
        for (int64_t i = 1; i + 1 < n; ++i)
            if (l[static_cast<size_t>(i)] == 12.0f) l[static_cast<size_t>(i - 1)] = NAN;
        if (std::isnan(l[0])) l[0] = 0.0f; // (a NaN there is nan_first's case)
        break;
    case Shape::all_nan: // no value compares with any other: 0
        for (auto& x : l) x = NAN;
        break;
    }
    return l;
}

// Token history with repeats and ids the penalty must skip (negative, past the vocabulary).
inline std::vector<int32_t> make_history(int64_t n, int length, uint64_t seed, const std::vector<float>& logits) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int64_t> any(0, n - 1);
    // the current top tokens are in the history, so the penalty changes the top of the distribution
    std::vector<int32_t> idx(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = static_cast<int32_t>(i);
    std::partial_sort(idx.begin(), idx.begin() + std::min<int64_t>(n, 8), idx.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
    std::vector<int32_t> h;
    for (int i = 0; i < length; ++i) {
        if (i % 5 == 0) h.push_back(idx[static_cast<size_t>(i / 5) % std::min<size_t>(8, idx.size())]);
        else if (i == 7) h.push_back(-1);
        else if (i == 11) h.push_back(static_cast<int32_t>(n + 5));
        else h.push_back(static_cast<int32_t>(any(rng)));
    }
    return h;
}

// The parameter combinations: each filter alone and together, both orders, greedy, penalty windows.
inline std::vector<SamplingParams> chains() {
    std::vector<SamplingParams> out;
    for (SamplerOrder order : {SamplerOrder::hf, SamplerOrder::llama_cpp}) {
        for (float penalty : {1.0f, 1.3f}) {
            for (int last_n : {-1, 64}) {
                if (penalty == 1.0f && last_n != -1) continue;
                SamplingParams g;
                g.order = order;
                g.repeat_penalty = penalty;
                g.repeat_last_n = last_n;
                out.push_back(g); // greedy
                struct F { float t; int k; float p, m; };
                for (F f : {F{1.0f, 0, 1.0f, 0.0f}, F{0.7f, 40, 1.0f, 0.0f}, F{1.0f, 1, 1.0f, 0.0f}, F{1.5f, 0, 0.9f, 0.0f}, F{0.8f, 0, 0.5f, 0.0f},
                            F{1.0f, 0, 1.0f, 0.05f}, F{0.7f, 50, 0.95f, 0.05f}, F{1.3f, 40, 0.8f, 0.0f}, F{3.0f, 0, 0.3f, 0.1f}, F{0.6f, 7, 1.0f, 0.2f}}) {
                    SamplingParams s = g;
                    s.temperature = f.t;
                    s.top_k = f.k;
                    s.top_p = f.p;
                    s.min_p = f.m;
                    out.push_back(s);
                }
            }
        }
    }
    SamplingParams none; // penalty with an empty window: no change
    none.temperature = 1.0f;
    none.repeat_penalty = 1.5f;
    none.repeat_last_n = 0;
    out.push_back(none);
    return out;
}

// A chain from its parameters in the order the tests list them.
inline SamplingParams chain_of(float temp, int top_k, float top_p, float min_p, float penalty, int last_n, SamplerOrder order, uint64_t seed) {
    SamplingParams s;
    s.temperature = temp;
    s.top_k = top_k;
    s.top_p = top_p;
    s.min_p = min_p;
    s.repeat_penalty = penalty;
    s.repeat_last_n = last_n;
    s.order = order;
    s.seed = seed;
    return s;
}

inline std::string describe(const SamplingParams& s) {
    char b[220];
    std::snprintf(b, sizeof b, "%s temp %g top_k %d top_p %g min_p %g penalty %g last_n %d seed %llu", s.order == SamplerOrder::hf ? "hf" : "llama.cpp",
                  s.temperature, s.top_k, s.top_p, s.min_p, s.repeat_penalty, s.repeat_last_n, static_cast<unsigned long long>(s.seed));
    return b;
}

inline std::vector<double> uniforms(uint64_t seed, int random_count) {
    std::vector<double> u{0.0, 0.25, 0.5, 0.75, 0.999999}; // exact quarters land on the boundaries of 4-way ties
    std::mt19937_64 rng(seed);
    for (int i = 0; i < random_count; ++i) u.push_back(static_cast<double>(rng() >> 11) * 0x1.0p-53);
    return u;
}

struct Tally {
    size_t compared = 0, mismatches = 0, near_boundary = 0;
    std::string first_failure;
};

// A sampler's token for (chain, u): the op under test, or the reference.
using Picker = std::function<int32_t(const SamplingParams&, double u)>;

// Compares the candidate's token with the reference's for every chain and u (greedy_only: the greedy chains only).
inline Tally compare(const Picker& candidate, const Picker& reference, const std::vector<double>& us, const std::string& what,
                     bool greedy_only = false) {
    Tally t;
    for (const SamplingParams& chain : chains()) {
        const bool greedy = chain.temperature <= 0.0f;
        if (greedy_only && !greedy) continue;
        for (size_t k = 0; k < (greedy ? 1 : us.size()); ++k) {
            const double u = us[k];
            const int32_t got = candidate(chain, u), want = reference(chain, u);
            ++t.compared;
            if (got == want) continue;
            if (!greedy && (got == reference(chain, std::max(0.0, u - 1e-12)) || got == reference(chain, std::min(u + 1e-12, 1.0 - 0x1.0p-53)))) {
                ++t.near_boundary;
                continue;
            }
            ++t.mismatches;
            if (t.first_failure.empty())
                t.first_failure = what + ": " + describe(chain) + " u " + std::to_string(u) + ": got " + std::to_string(got) + ", want " + std::to_string(want);
        }
    }
    return t;
}

// The backend's sample op on these logits and history (the window: all of it).
inline Picker backend_picker(Backend& be, const std::vector<float>& logits, const std::vector<int32_t>& history) {
    struct Tensors { Tensor logits, history, u, token; };
    auto t = std::make_shared<Tensors>();
    const int64_t n = static_cast<int64_t>(logits.size());
    t->logits = be.alloc(GgmlType::F32, 1, n);
    be.upload(logits.data(), t->logits);
    t->history = be.alloc(GgmlType::I32, static_cast<int64_t>(history.size()) + 1, 1);
    if (!history.empty()) be.upload(history.data(), t->history.rows_view(0, static_cast<int64_t>(history.size())));
    t->u = be.alloc(GgmlType::I32, 1, 2);
    t->token = be.alloc(GgmlType::I32, 1, 1);
    const int n_history = static_cast<int>(history.size());
    return [&be, t, n_history](const SamplingParams& chain, double u) {
        SampleParams p;
        p.chain = chain;
        p.history = &t->history;
        p.n_history = n_history;
        p.u = &t->u;
        be.upload(&u, t->u);
        be.sample(t->logits, p, t->token);
        int32_t got = -1;
        be.download(t->token, &got);
        return got;
    };
}

// The host chain as the reference.
inline Picker host_chain(const std::vector<float>& logits, const std::vector<int32_t>& history) {
    return [&logits, &history](const SamplingParams& chain, double u) { return SamplerChain(chain).run(logits, history, u); };
}

} // namespace winnow::test::sampling
