#include "train/adamw.h"

#include <algorithm>
#include <string>

#include "winnow/error.h"

namespace winnow::train {

double learning_rate(const AdamWConfig& c, int step) {
    if (c.warmup_steps > 0 && step < c.warmup_steps) return c.lr * (step + 1) / c.warmup_steps;
    const int span = std::max(1, c.total_steps - c.warmup_steps);
    const double progress = std::min(1.0, static_cast<double>(step - c.warmup_steps) / span);
    const double min_lr = c.lr * c.min_lr_ratio;
    return min_lr + 0.5 * (c.lr - min_lr) * (1 + std::cos(M_PI * progress));
}

template <typename F>
AdamW<F>::AdamW(const AdamWConfig& c, const std::vector<ParamTensor>& tensors, size_t n_params) : c_(c), decay_(n_params, 0), m_(n_params, F(0)), v_(n_params, F(0)) {
    for (const auto& t : tensors)
        if (t.decay) std::fill(decay_.begin() + t.offset, decay_.begin() + t.offset + t.size, 1);
}

template <typename F>
double AdamW<F>::update(std::vector<F>& params, std::vector<F>& grads, int step, double lr_scale) {
    double norm2 = 0;
#pragma omp parallel for reduction(+ : norm2) schedule(static)
    for (size_t i = 0; i < grads.size(); ++i) norm2 += static_cast<double>(grads[i]) * grads[i];
    const double norm = std::sqrt(norm2);
    if (!std::isfinite(norm)) // one inf or NaN would poison every weight through the moments: stop before touching them
        throw Error(ErrorKind::invalid_argument, "AdamW: the gradient norm at step " + std::to_string(step + 1) + " is not finite (lower --lr?)");
    const double clip = c_.grad_clip > 0 && norm > c_.grad_clip ? c_.grad_clip / norm : 1.0;
    const double lr = learning_rate(c_, step) * lr_scale;
    const double bc1 = 1 - std::pow(c_.beta1, step + 1), bc2 = 1 - std::pow(c_.beta2, step + 1);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < params.size(); ++i) {
        const double g = grads[i] * clip;
        m_[i] = static_cast<F>(c_.beta1 * m_[i] + (1 - c_.beta1) * g);
        v_[i] = static_cast<F>(c_.beta2 * v_[i] + (1 - c_.beta2) * g * g);
        const double mhat = m_[i] / bc1, vhat = v_[i] / bc2;
        double p = params[i];
        if (decay_[i]) p -= lr * c_.weight_decay * p;
        p -= lr * mhat / (std::sqrt(vhat) + c_.eps);
        params[i] = static_cast<F>(p);
    }
    return norm;
}

template class AdamW<float>;
template class AdamW<double>;

} // namespace winnow::train
