#include "head/exact_head.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace winnow::head {

HeadResult exact_softmax(std::span<const float> A, int n, int d, std::span<const float> x, float beta, int k) {
    // Each logit in double, summed in 8 interleaved partial sums (lanes j mod 8) added pairwise at the end: a fixed
    // order the compiler turns into vector code without reassociating anything itself (the oracle runs for every
    // query of `bench head` and its calibration, where one sequential sum per row made it most of the run's time).
    constexpr int kLanes = 8;
    std::vector<double> mu(n);
    for (int i = 0; i < n; ++i) {
        const float* a = A.data() + static_cast<size_t>(i) * d;
        double part[kLanes] = {};
        int j = 0;
        for (; j + kLanes <= d; j += kLanes)
            for (int l = 0; l < kLanes; ++l) part[l] += static_cast<double>(a[j + l]) * x[j + l];
        for (; j < d; ++j) part[j % kLanes] += static_cast<double>(a[j]) * x[j];
        const double s = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
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
