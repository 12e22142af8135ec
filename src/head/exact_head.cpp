#include "head/exact_head.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace winnow::head {

HeadResult exact_softmax(std::span<const float> A, int n, int d, std::span<const float> x, float beta, int k) {
    std::vector<double> mu(n);
    for (int i = 0; i < n; ++i) {
        double s = 0;
        for (int j = 0; j < d; ++j) s += static_cast<double>(A[static_cast<size_t>(i) * d + j]) * x[j];
        mu[i] = beta * s;
    }
    const double mx = *std::max_element(mu.begin(), mu.end());
    double sum = 0;
    for (double m : mu) sum += std::exp(m - mx);
    HeadResult r;
    r.log_norm = mx + std::log(sum);
    std::vector<int32_t> idx(n);
    std::iota(idx.begin(), idx.end(), 0);
    k = std::min(k, n);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) { return mu[a] > mu[b]; });
    r.top.assign(idx.begin(), idx.begin() + k);
    for (int32_t i : r.top) r.top_logits.push_back(static_cast<float>(mu[i]));
    r.p_top = static_cast<float>(std::exp(mu[r.top[0]] - r.log_norm));
    return r;
}

} // namespace winnow::head
