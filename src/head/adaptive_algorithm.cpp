#include "head/adaptive_algorithm.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "backend/cpu/simd.h"
#include "winnow/error.h"

namespace winnow::head {

ColumnStatistics column_statistics(std::span<const float> A, int n, int d) {
    ColumnStatistics c;
    c.l1.assign(d, 0.0);
    for (size_t i = 0; i < static_cast<size_t>(n); ++i)
        for (int j = 0; j < d; ++j) c.l1[j] += std::fabs(static_cast<double>(A[i * d + j]));
    const double wsum = std::accumulate(c.l1.begin(), c.l1.end(), 0.0);
    for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
        double s = 0;
        for (int j = 0; j < d; ++j) {
            const double q = c.l1[j] / wsum;
            if (q > 0) {
                const double a = A[i * d + j];
                s += a * a / (q * static_cast<double>(d) * d);
            }
        }
        c.sigma2_atoms = std::max(c.sigma2_atoms, s);
    }
    return c;
}

DesRajColumns des_raj_columns(const ColumnOrder& order, std::span<const float> x) {
    const int dp = order.size();
    DesRajColumns c{order.column, std::vector<int32_t>(dp), std::vector<float>(dp), std::vector<float>(dp)};
    double remaining = 0;
    for (int m = dp - 1; m >= 0; --m) {
        remaining += order.share[m];
        c.blk[m] = c.col[m] / 32;
        c.xs[m] = x[c.col[m]];
        c.coef[m] = static_cast<float>(remaining / order.share[m]);
    }
    return c;
}

ColumnOrder gumbel_column_order(const std::vector<double>& l1, std::span<const float> x, uint64_t noise_seed) {
    const size_t d = l1.size();
    std::vector<double> s(d);
    double total = 0, absx = 0;
    for (size_t j = 0; j < d; ++j) {
        s[j] = l1[j] * std::fabs(static_cast<double>(x[j]));
        total += s[j];
    }
    std::mt19937_64 rng(noise_seed);
    std::vector<std::pair<double, int32_t>> keyed;
    for (size_t j = 0; j < d; ++j) {
        if (s[j] <= 0) continue; // zero columns are never sampled and count neither way
        const double u = (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53; // (0, 1)
        keyed.emplace_back(std::log(s[j] / total) - std::log(-std::log(u)), static_cast<int32_t>(j));
        absx += std::fabs(static_cast<double>(x[j]));
    }
    std::sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    ColumnOrder o;
    for (const auto& [key, j] : keyed) {
        o.column.push_back(j);
        o.key.push_back(key);
        o.share.push_back(s[j] / total);
    }
    o.mean_abs_x = keyed.empty() ? 0 : absx / keyed.size();
    return o;
}

void lead_with_exact_prefix(ColumnOrder& order, int m) {
    m = std::clamp(m, 0, order.size());
    std::vector<int> idx(order.size());
    std::iota(idx.begin(), idx.end(), 0);
    // the m largest shares, largest first (ties: lower column), then the rest in their key order
    std::partial_sort(idx.begin(), idx.begin() + m, idx.end(), [&](int a, int b) {
        return order.share[a] != order.share[b] ? order.share[a] > order.share[b] : order.column[a] < order.column[b];
    });
    std::stable_sort(idx.begin() + m, idx.end()); // the tail back in key order (idx order = key order)
    ColumnOrder o;
    for (int t : idx) {
        o.column.push_back(order.column[t]);
        o.key.push_back(order.key[t]);
        o.share.push_back(order.share[t]);
    }
    o.mean_abs_x = order.mean_abs_x;
    o.exact_prefix = m;
    order = std::move(o);
}

double sum_exp(const float* v, size_t n, float shift, float* terms) {
    double total = 0;
    size_t i = 0;
#ifdef WINNOW_AVX2
    const __m256 sh = _mm256_set1_ps(shift);
    while (i + 8 <= n) {
        __m256 acc = _mm256_setzero_ps();
        const size_t end = std::min(n, i + 4096) & ~size_t{7};
        for (; i < end; i += 8) {
            const __m256 e = cpu::exp_ps(_mm256_sub_ps(_mm256_loadu_ps(v + i), sh));
            if (terms) _mm256_storeu_ps(terms + i, e);
            acc = _mm256_add_ps(acc, e);
        }
        total += cpu::hsum(acc);
    }
#endif
    for (; i < n; ++i) {
        const float e = std::exp(v[i] - shift);
        if (terms) terms[i] = e;
        total += e;
    }
    return total;
}

double log_sum_exp(std::span<const float> v) {
    if (v.empty()) return -std::numeric_limits<double>::infinity();
    const float mx = *std::max_element(v.begin(), v.end());
    return mx + std::log(sum_exp(v.data(), v.size(), mx, nullptr));
}

void ReadRecorder::begin_query(int n, int d, std::span<const int32_t> sampled_columns) {
    d_ = d;
    side_samples_ = 0;
    read_.assign(static_cast<size_t>(n) * d, 0);
    sampled_.assign(d, 0);
    for (int32_t j : sampled_columns) sampled_[j] = 1;
    ++queries_;
}

int64_t ReadRecorder::distinct_samples() const {
    int64_t count = side_samples_;
    for (size_t k = 0; k < read_.size(); ++k) count += read_[k] & sampled_[k % d_];
    return count;
}

uint64_t query_noise_seed(uint64_t seed, uint64_t query_counter) {
    auto splitmix64 = [](uint64_t z) {
        z += 0x9e3779b97f4a7c15ull;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    };
    return splitmix64(seed ^ splitmix64(query_counter));
}

AdaptiveResult all_logits_tied(int n, int k) {
    AdaptiveResult r;
    r.head.top.resize(k);
    std::iota(r.head.top.begin(), r.head.top.end(), 0);
    r.head.top_logits.assign(k, 0.0f);
    r.head.log_norm = std::log(static_cast<double>(n));
    r.head.p_top = 1.0f / n;
    return r;
}

void check_params(const AdaptiveParams& p, int n) {
    if (!(p.epsilon > 0) || !(p.delta > 0 && p.delta < 1) || p.k < 1 || p.k > n || !(p.fudge_best > 0 && p.fudge_best <= 1) ||
        !(p.fudge_norm > 0 && p.fudge_norm <= kMaxFudgeNorm) || !(p.warmup_cap > 0 && p.warmup_cap <= 1))
        throw Error(ErrorKind::invalid_argument, "AdaptiveSoftmax: need epsilon > 0, 0 < delta < 1, 1 <= k <= n, f_b and the warm-up cap in (0, 1], f_ln in (0, " +
                                                     std::to_string(static_cast<int>(kMaxFudgeNorm)) + "]");
}

} // namespace winnow::head
