#pragma once
// AdamW (Loshchilov & Hutter: decoupled weight decay) over a flat parameter buffer, with global-norm gradient
// clipping and the warm-up + cosine learning-rate schedule. fp32 moments next to the fp32 master weights.
#include <cmath>
#include <cstdint>
#include <vector>

#include "train/transformer.h"

namespace winnow::train {

struct AdamWConfig {
    double lr = 3e-4;          // peak learning rate
    double min_lr_ratio = 0.1; // the cosine decays to lr * min_lr_ratio
    int warmup_steps = 0;
    int total_steps = 1;
    double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
    double weight_decay = 0.1; // applied to the tensors marked `decay` (matrices and embeddings)
    double grad_clip = 1.0;    // global L2 norm; <= 0: off
};

// Learning rate at `step` (0-based): linear warm-up to lr, then cosine to lr * min_lr_ratio at total_steps.
double learning_rate(const AdamWConfig& c, int step);

template <typename F>
class AdamW {
public:
    AdamW(const AdamWConfig& c, const std::vector<ParamTensor>& tensors, size_t n_params);
    // One update; returns the gradient norm before clipping. `step` counts from 0.
    double update(std::vector<F>& params, std::vector<F>& grads, int step, double lr_scale = 1.0);
    std::vector<F>& m() { return m_; }
    std::vector<F>& v() { return v_; }
    const std::vector<F>& m() const { return m_; }
    const std::vector<F>& v() const { return v_; }

private:
    AdamWConfig c_;
    std::vector<uint8_t> decay_; // per parameter
    std::vector<F> m_, v_;
};

extern template class AdamW<float>;
extern template class AdamW<double>;

} // namespace winnow::train
