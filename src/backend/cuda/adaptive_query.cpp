// The host-driven AdaptiveSoftmax query (adaptive_query.h): the query's preparation and constants, the driver over
// adaptive_control.cuh's control flow, and the host executor. Every constant below is the CPU path's
// (head/fast_adaptive_softmax.cpp), written with the same expressions in the same order, so the same inputs give the
// same choices.
#include "backend/cuda/adaptive_query.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "head/fast_adaptive_softmax.h"
#include "winnow/error.h"

namespace winnow::cuda::adaptive {

namespace {
const double kCpuStreamCost = head::FastOptions{}.stream_cost; // FastAdaptiveSoftmax's default cost rule, so both paths choose alike (see the header)
} // namespace

ControlConstants control_constants(const head::ColumnMajorHead& H, int dp, double sigma2, const AdaptiveParams& p) {
    ControlConstants c;
    c.n = H.n(), c.dp = dp;
    c.d = H.d(), c.stride = static_cast<double>(H.stride());
    c.stream_cost = kCpuStreamCost;
    const double d_s = p.delta / 2; // exact best-arm value: delta split in two
    const double L = std::log(6.0 * c.n / d_s);
    c.warm_thr = static_cast<float>(1.0 / (17.0 * L) / p.fudge_norm);
    c.warm_cap = std::max(1, static_cast<int>(std::floor(p.warmup_cap * dp)));
    c.v0 = sigma2 / 4;
    const double log_term = std::log(6.0 * c.n * std::max(1.0, std::log(static_cast<double>(dp))) / d_s);
    c.width2 = static_cast<float>(2 * p.fudge_best * log_term);
    c.fudge_best = p.fudge_best, c.fudge_norm = p.fudge_norm, c.epsilon = p.epsilon;
    c.norm_c2 = static_cast<float>(2 * L); // alpha_i from the variances as estimated: f_ln is on the targets only (629c156)
    c.norm_a_scale = 16 * std::sqrt(2.0) * L;
    c.norm_b_scale = 16 * std::log(12 / d_s);
    return c;
}

PreparedQuery prepare_query(const head::ColumnMajorHead& H, std::span<const float> x, const AdaptiveParams& p, uint64_t noise_seed) {
    head::check_params(p, H.n());
    if (p.k != 1) throw Error(ErrorKind::invalid_argument, "adaptive head (cuda): only k = 1 is implemented, not k = " + std::to_string(p.k));
    if (x.size() != static_cast<size_t>(H.d()))
        throw Error(ErrorKind::invalid_argument, "AdaptiveSoftmax: query has " + std::to_string(x.size()) + " values, the head has d = " + std::to_string(H.d()));
    // the order and the Des Raj coefficients: the same helpers as FastAdaptiveSoftmax::Query
    const head::ColumnOrder order = head::gumbel_column_order(H.statistics().l1, x, noise_seed);
    head::DesRajColumns c = head::des_raj_columns(order, x);
    PreparedQuery q;
    q.col = std::move(c.col), q.blk = std::move(c.blk), q.xs = std::move(c.xs), q.coef = std::move(c.coef);
    q.constants = control_constants(H, order.size(), order.sigma2(H.statistics().sigma2_atoms, p.beta), p);
    return q;
}

head::AdaptiveResult query_result(const ControlFinish& f, const ControlCost& c, const ControlConstants& k) {
    head::AdaptiveResult r;
    r.head.log_norm = f.sums.log_sum_exp();
    r.head.top = {f.best};
    r.head.top_logits = {f.mu_best};
    r.head.p_top = static_cast<float>(std::exp(f.mu_best - r.head.log_norm));
    r.cost.samples = c.samples, r.cost.warmup = c.warmup, r.cost.best_arm = c.best_arm, r.cost.normalizer = c.normalizer;
    r.cost.d_prime = k.dp;
    r.cost.baseline = static_cast<int64_t>(k.n) * k.dp;
    return r;
}

QueryDriver::QueryDriver(const head::ColumnMajorHead& H, QuerySteps& steps, std::span<const float> x, const AdaptiveParams& p, uint64_t noise_seed)
    : q_(prepare_query(H, x, p, noise_seed)), control_(steps, q_.constants) {
    if (q_.constants.dp > 0) steps.begin_query(q_.order(), x, p.beta);
}

head::AdaptiveCost QueryDriver::cost() const {
    head::AdaptiveCost c;
    const ControlCost& k = control_.cost();
    c.samples = k.samples, c.warmup = k.warmup, c.best_arm = k.best_arm, c.normalizer = k.normalizer;
    c.d_prime = q_.constants.dp;
    c.baseline = static_cast<int64_t>(q_.constants.n) * q_.constants.dp;
    return c;
}

head::AdaptiveResult QueryDriver::run() {
    if (q_.constants.dp == 0) return head::all_logits_tied(q_.constants.n, 1);
    warm_up();
    eliminate();
    return finish();
}

// ---- the host executor ----

HostQuerySteps::HostQuerySteps(const head::ColumnMajorHead& H) : H_(H), n_(H.n()) {
    layout_.stride = H.stride();
    if (H.storage() == head::ColumnMajorHead::Storage::q8) {
        layout_.quants = H.quant_column(0);
        layout_.scales = H.scale_row(0);
    } else {
        layout_.values = H.float_column(0);
    }
    const size_t stride = H.stride();
    K_.assign(stride, 0.0f);
    Z_ = Z2_ = mu_ = K_;
    var_.assign(stride, INFINITY);
    T_.assign(stride, 0);
    e_.assign(n_, 0.0f);
    active_.assign(n_, 0);
    list_.assign(n_, 0);
    all_.assign(n_, 1);
    candidates_ = kept_ = todo_ = std::vector<uint8_t>(n_, 0);
}

std::vector<uint8_t>& HostQuerySteps::set(ArmSet s) {
    switch (s) {
    case ArmSet::all: return all_;
    case ArmSet::candidates: return candidates_;
    case ArmSet::kept: return kept_;
    default: return todo_;
    }
}

void HostQuerySteps::begin_query(const QueryOrder& order, std::span<const float> x, float beta) {
    col_.assign(order.col, order.col + order.dp);
    blk_.assign(order.blk, order.blk + order.dp);
    xs_.assign(order.xs, order.xs + order.dp);
    coef_.assign(order.coef, order.coef + order.dp);
    order_ = {col_.data(), blk_.data(), xs_.data(), coef_.data(), order.dp};
    beta_ = beta;
    x_.assign(x.begin(), x.end());
    H_.prepare_exact(x_, exact_x_); // as the fast head does
}

void HostQuerySteps::warm_up(int from, int to, bool fresh) { warm_up_host(layout_, order_, state(), H_.stride(), from, to, fresh, beta_); }

SetStats HostQuerySteps::set_stats(ArmSet s, float thr) { return set_stats_host(set(s).data(), var_.data(), T_.data(), n_, thr, order_.dp); }

Group HostQuerySteps::mark_group(ArmSet s, int target) {
    const std::vector<uint8_t>& in = set(s);
    Group g;
    for (int i = 0; i < n_; ++i)
        if (in[i] && T_[i] < target) g.from = std::min(g.from, T_[i]);
    for (int i = 0; i < n_; ++i) {
        const bool mine = in[i] && T_[i] == g.from;
        active_[i] = mine ? -1 : 0;
        if (mine) list_[g.count++] = i;
    }
    return g;
}

void HostQuerySteps::stream_marked(int from, int to) { stream_masked_host(layout_, order_, state(), active_.data(), n_, from, to, beta_); }

void HostQuerySteps::exact_marked(int count) {
    for (int c = 0; c < count; ++c) {
        const int32_t i = list_[c];
        mu_[i] = mul_rn(beta_, H_.row_dot(i, exact_x_)); // the CPU's exact_all
        var_[i] = 0.0f;
        T_[i] = order_.dp;
    }
}

void HostQuerySteps::reset_candidates() { candidates_ = all_; }

RoundResult HostQuerySteps::eliminate_round(float width2) {
    return eliminate_round_host(mu_.data(), var_.data(), T_.data(), candidates_.data(), kept_.data(), n_, order_.dp, width2);
}

void HostQuerySteps::keep_survivors() { candidates_.swap(kept_); }

void HostQuerySteps::exact_arm(int32_t i) {
    list_[0] = i;
    exact_marked(1);
}

NormSums HostQuerySteps::norm_weights(float c2) { return norm_weights_host(mu_.data(), var_.data(), n_, c2, e_.data()); }

int32_t HostQuerySteps::norm_filter(bool first, double f, double a, double b) {
    return norm_filter_host(first, e_.data(), var_.data(), T_.data(), n_, order_.dp, f, a, b, todo_.data());
}

SumExp HostQuerySteps::sum_exp_mu() { return sum_exp_host(mu_.data(), n_); }

void HostQuerySteps::read_state(std::vector<float>& mu, std::vector<float>& var, std::vector<int32_t>& T, std::vector<uint8_t>& candidates) {
    mu.assign(mu_.begin(), mu_.begin() + n_);
    var.assign(var_.begin(), var_.begin() + n_);
    T.assign(T_.begin(), T_.begin() + n_);
    candidates = candidates_;
}

} // namespace winnow::cuda::adaptive
