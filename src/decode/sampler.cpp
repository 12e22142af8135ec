#include "decode/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "winnow/error.h"

namespace winnow {

void SamplingParams::validate() const {
    auto bad = [](const std::string& m) { throw Error(ErrorKind::invalid_argument, m); };
    if (!std::isfinite(temperature)) bad("temperature must be a finite number");
    if (!(top_p > 0.0f) || top_p > 1.0f) bad("top-p must be in (0, 1]");
    if (min_p < 0.0f || min_p > 1.0f) bad("min-p must be in [0, 1]");
    if (!(repeat_penalty > 0.0f) || !std::isfinite(repeat_penalty)) bad("repeat penalty must be a positive number");
    if (repeat_last_n < -1) bad("repeat-last-n must be -1 (whole sequence) or >= 0");
}

SamplerChain::SamplerChain(const SamplingParams& p) : p_(p) { p_.validate(); }

Sampler::Sampler(const SamplingParams& p) : chain_(p), rng_(p.seed) {}

double Sampler::next_uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
    if (logits.empty()) throw Error(ErrorKind::invalid_argument, "sampler: empty logits");
    return chain_.run(logits, history, draws() ? next_uniform() : 0.0); // greedy steps leave the engine alone
}

void SamplerChain::apply_penalty(std::span<const int32_t> history) {
    if (p_.repeat_penalty == 1.0f) return;
    size_t from = 0;
    if (p_.repeat_last_n >= 0 && history.size() > static_cast<size_t>(p_.repeat_last_n)) from = history.size() - p_.repeat_last_n;
    std::unordered_set<int32_t> seen(history.begin() + from, history.end());
    for (int32_t id : seen) {
        if (id < 0 || id >= static_cast<int32_t>(work_.size())) continue;
        float& l = work_[id];
        l = l > 0 ? l / p_.repeat_penalty : l * p_.repeat_penalty;
    }
}

void SamplerChain::temperature() {
    for (auto& c : cand_) c.second /= p_.temperature;
}

void SamplerChain::top_k() {
    if (p_.top_k <= 0 || static_cast<size_t>(p_.top_k) >= cand_.size()) return;
    // keep every candidate whose logit reaches the k-th largest (ties at the boundary stay, as in HF)
    std::vector<float> vals;
    vals.reserve(cand_.size());
    for (auto& c : cand_) vals.push_back(c.second);
    std::nth_element(vals.begin(), vals.begin() + (p_.top_k - 1), vals.end(), std::greater<float>());
    const float kth = vals[p_.top_k - 1];
    std::erase_if(cand_, [&](const auto& c) { return c.second < kth; });
}

namespace {
// Softmax probabilities of candidates sorted by logit, descending.
std::vector<double> sorted_probs(std::vector<std::pair<int32_t, float>>& cand) {
    std::stable_sort(cand.begin(), cand.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    std::vector<double> p(cand.size());
    double sum = 0;
    for (size_t i = 0; i < cand.size(); ++i) sum += p[i] = std::exp(static_cast<double>(cand[i].second) - cand[0].second);
    for (auto& v : p) v /= sum;
    return p;
}
} // namespace

void SamplerChain::top_p() {
    if (p_.top_p >= 1.0f || cand_.size() <= 1) return;
    auto p = sorted_probs(cand_);
    size_t keep = cand_.size();
    if (p_.order == SamplerOrder::hf) {
        // HF: drop a token when the mass of it and everything less likely is <= 1 - top_p
        double tail = 0;
        for (size_t i = cand_.size(); i-- > 1;) {
            tail += p[i];
            if (tail <= 1.0 - p_.top_p) keep = i;
            else break;
        }
    } else {
        // llama.cpp: the smallest prefix whose cumulative mass reaches top_p
        double cum = 0;
        for (size_t i = 0; i < cand_.size(); ++i) {
            cum += p[i];
            if (cum >= p_.top_p) { keep = i + 1; break; }
        }
    }
    cand_.resize(std::max<size_t>(keep, 1));
}

void SamplerChain::min_p() {
    if (p_.min_p <= 0.0f || cand_.empty()) return;
    // p_i >= min_p * p_max  <=>  logit_i >= logit_max + log(min_p)
    float mx = -INFINITY;
    for (auto& c : cand_) mx = std::max(mx, c.second);
    const float threshold = mx + std::log(p_.min_p);
    std::erase_if(cand_, [&](const auto& c) { return c.second < threshold; });
}

int32_t SamplerChain::draw(double u) {
    auto p = sorted_probs(cand_);
    double cum = 0;
    size_t pick = cand_.size() - 1;
    for (size_t i = 0; i < cand_.size(); ++i) {
        cum += p[i];
        if (u < cum) { pick = i; break; }
    }
    for (size_t i = 0; i < cand_.size(); ++i) cand_[i].second = static_cast<float>(p[i]);
    return cand_[pick].first;
}

int32_t SamplerChain::run(std::span<const float> logits, std::span<const int32_t> history, double u) {
    if (logits.empty()) throw Error(ErrorKind::invalid_argument, "sampler: empty logits");
    work_.assign(logits.begin(), logits.end());
    apply_penalty(history);
    if (p_.temperature <= 0.0f) {
        const auto best = static_cast<int32_t>(std::max_element(work_.begin(), work_.end()) - work_.begin());
        cand_.assign(1, {best, 1.0f});
        return best;
    }
    cand_.clear();
    cand_.reserve(work_.size());
    for (size_t i = 0; i < work_.size(); ++i) cand_.emplace_back(static_cast<int32_t>(i), work_[i]);
    if (p_.order == SamplerOrder::hf) {
        temperature();
        top_k();
        top_p();
        min_p();
    } else {
        top_k();
        top_p();
        min_p();
        temperature();
    }
    return draw(u);
}

} // namespace winnow
