#include "train/softmax_approx.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace winnow::train {

void SoftmaxApproxStore::resize(int rows, int T, int m) {
    m_ = m;
    T_ = T;
    slots_.assign(static_cast<size_t>(rows) * (2 * m + 1), 0.0f);
    rank8_.assign(T <= 256 ? static_cast<size_t>(rows) * T : 0, 0);
    rank16_.assign(T > 256 ? static_cast<size_t>(rows) * T : 0, 0);
}

template <typename F>
void SoftmaxApproxStore::compress_impl(int row, const F* p, int n) {
    std::vector<int> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
    for (int pos = 0; pos < n; ++pos) {
        const size_t at = static_cast<size_t>(row) * T_ + order[pos];
        if (T_ <= 256) rank8_[at] = static_cast<uint8_t>(pos);
        else rank16_[at] = static_cast<uint16_t>(pos);
    }
    float* s = slots_.data() + static_cast<size_t>(row) * (2 * m_ + 1);
    if (n <= 2 * m_) { // short row: every value, exactly
        for (int pos = 0; pos < n; ++pos) s[pos] = static_cast<float>(p[order[pos]]);
        return;
    }
    for (int i = 0; i < m_; ++i) {
        s[i] = static_cast<float>(p[order[i]]);
        s[m_ + i] = static_cast<float>(p[order[n - m_ + i]]);
    }
    const double h = p[order[m_ - 1]], l = std::max(static_cast<double>(p[order[n - m_]]), 1e-30), g = p[order[m_]];
    const double n_eff = n - 2 * m_ + 1;
    const double lambda = h >= 1 - 1e-12 ? 1e4 : (std::log(std::max(h, 1e-30) / l) + 2 * (h - g)) / (n_eff * (1 - h));
    s[2 * m_] = static_cast<float>(std::clamp(lambda, 0.0, 1e4));
}

void SoftmaxApproxStore::compress(int row, const float* p, int n) { compress_impl(row, p, n); }
void SoftmaxApproxStore::compress(int row, const double* p, int n) { compress_impl(row, p, n); }

template <typename F>
void SoftmaxApproxStore::rebuild(int row, int n, F* out) const {
    const float* s = slots_.data() + static_cast<size_t>(row) * (2 * m_ + 1);
    auto rank = [&](int j) { const size_t at = static_cast<size_t>(row) * T_ + j; return T_ <= 256 ? static_cast<int>(rank8_[at]) : static_cast<int>(rank16_[at]); };
    if (n <= 2 * m_) {
        for (int j = 0; j < n; ++j) out[j] = s[rank(j)];
        return;
    }
    double kept = 0;
    for (int i = 0; i < 2 * m_; ++i) kept += s[i];
    const double h = s[m_ - 1], lambda = s[2 * m_];
    double usum = 0;
    for (int pos = m_; pos < n - m_; ++pos) usum += h * std::exp(-lambda * (pos - m_ + 1));
    const double scale = usum > 0 ? std::max(0.0, 1 - kept) / usum : 0;
    for (int j = 0; j < n; ++j) {
        const int pos = rank(j);
        if (pos < m_) out[j] = s[pos];
        else if (pos >= n - m_) out[j] = s[m_ + pos - (n - m_)];
        else out[j] = static_cast<F>(h * std::exp(-lambda * (pos - m_ + 1)) * scale);
    }
}

template void SoftmaxApproxStore::rebuild<float>(int, int, float*) const;
template void SoftmaxApproxStore::rebuild<double>(int, int, double*) const;

} // namespace winnow::train
