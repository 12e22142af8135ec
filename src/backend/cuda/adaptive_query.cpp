// The host-driven AdaptiveSoftmax query (adaptive_query.h): FastAdaptiveSoftmax::run's control flow for k = 1 over an
// executor of per-arm steps, and the host executor. Every decision below is the CPU path's (head/fast_adaptive_softmax.cpp),
// written with the same expressions in the same order, so the same inputs give the same choices.
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

QueryDriver::QueryDriver(const head::ColumnMajorHead& H, QuerySteps& steps, std::span<const float> x, const AdaptiveParams& p, uint64_t noise_seed)
    : H_(H), steps_(steps), p_(p), n_(H.n()) {
    head::check_params(p, n_);
    if (p.k != 1) throw Error(ErrorKind::invalid_argument, "adaptive head (cuda): only k = 1 is implemented, not k = " + std::to_string(p.k));
    if (x.size() != static_cast<size_t>(H.d()))
        throw Error(ErrorKind::invalid_argument, "AdaptiveSoftmax: query has " + std::to_string(x.size()) + " values, the head has d = " + std::to_string(H.d()));
    // the order and the Des Raj coefficients: the same helpers as FastAdaptiveSoftmax::Query
    const head::ColumnOrder order = head::gumbel_column_order(H.statistics().l1, x, noise_seed);
    dp_ = order.size();
    head::DesRajColumns c = head::des_raj_columns(order, x);
    col_ = std::move(c.col), blk_ = std::move(c.blk), xs_ = std::move(c.xs), coef_ = std::move(c.coef);
    sigma2_ = order.sigma2(H.statistics().sigma2_atoms, p.beta);
    d_s_ = p.delta / 2; // exact best-arm value: delta split in two
    cost_.d_prime = dp_;
    cost_.baseline = static_cast<int64_t>(n_) * dp_;
    if (dp_ > 0) steps_.begin_query(QueryOrder{col_.data(), blk_.data(), xs_.data(), coef_.data(), dp_}, x, p.beta);
}

// Phase A. The CPU tests var > thr over every arm; pull_failing adds T < d', which changes nothing here: inside the
// loop every arm has read cur < cap <= d' columns.
void QueryDriver::warm_up() {
    const double L = std::log(6.0 * n_ / (p_.delta / 2));
    const float thr = static_cast<float>(1.0 / (17.0 * L) / p_.fudge_norm);
    const int cap = std::max(1, static_cast<int>(std::floor(p_.warmup_cap * dp_)));
    double t = std::min(16, cap);
    int cur = 0;
    while (cur < cap) {
        if (cur > 0 && !steps_.set_stats(ArmSet::all, thr).failing) break;
        const int target = std::clamp(static_cast<int>(std::ceil(t)), cur + 1, cap);
        steps_.warm_up(cur, target, cur == 0);
        cost_.samples += static_cast<int64_t>(n_) * (target - cur);
        cur = target;
        t *= 1.5;
    }
    cost_.warmup = cost_.samples;
}

// advance(): the arms of s below target, one prefix length at a time (shortest first), each group streamed or read
// exactly by the CPU's cost rule. A group's arms end at target or d', so the next group's prefix is longer.
void QueryDriver::advance(ArmSet s, int target) {
    for (;;) {
        const Group g = steps_.mark_group(s, target);
        if (g.count == 0) return;
        const int from = g.from;
        const double share = static_cast<double>(g.count) / n_, vectors = H_.stride() / 8.0 * (1 - std::pow(1 - share, 8));
        const double stream_cost = kCpuStreamCost * vectors * 8 * (target - from), exact_cost = static_cast<double>(g.count) * H_.d();
        if (target >= dp_ || exact_cost <= stream_cost) {
            steps_.exact_marked(g.count);
            cost_.samples += static_cast<int64_t>(g.count) * (dp_ - from);
        } else {
            steps_.stream_marked(from, target);
            cost_.samples += static_cast<int64_t>(g.count) * (target - from);
        }
    }
}

// PullToVar over the candidates, batched: all of them to the same prefix length until each variance is under thr.
void QueryDriver::pull_to_var(float thr) {
    double t = std::min(16, dp_);
    SetStats st = steps_.set_stats(ArmSet::candidates, thr);
    const int shortest = std::min(dp_, static_cast<int>(st.min_T)); // steps that advance nobody are skipped
    while (std::ceil(t) <= shortest && t < dp_) t = std::min(static_cast<double>(dp_), 1.5 * t);
    while (st.failing) {
        advance(ArmSet::candidates, std::min(dp_, static_cast<int>(std::ceil(t))));
        t = std::min(static_cast<double>(dp_), 1.5 * t);
        st = steps_.set_stats(ArmSet::candidates, thr);
    }
}

// Phase B for k = 1: rounds until one candidate is left or all are exact.
bool QueryDriver::eliminate(int max_rounds) {
    steps_.reset_candidates();
    candidates_ = n_;
    double v = sigma2_ / 4;
    const double log_term = std::log(6.0 * n_ * std::max(1.0, std::log(static_cast<double>(dp_))) / d_s_);
    const float width2 = static_cast<float>(2 * p_.fudge_best * log_term); // c_i^2 = width2 * var_i
    for (int round = 1;; ++round) {
        const int64_t before = cost_.samples;
        pull_to_var(static_cast<float>(v / p_.fudge_best));
        const bool pulled = cost_.samples != before;
        const RoundResult r = steps_.eliminate_round(width2);
        const bool shrank = r.kept != candidates_;
        const bool done = r.kept <= 1 || r.all_exact;
        if (r.kept >= 1) steps_.keep_survivors(), candidates_ = r.kept; // none kept (a NaN floor): the last set stays
        if (done) return true;
        if (round >= max_rounds) return false;
        v /= 2; // the per-round sample size roughly doubles
        if (!pulled && !shrank) {
            // Nothing moved: skip the rounds that would repeat this one; arms tied at a zero variance short of d'
            // would never separate, so they are computed exactly (the CPU's reasoning, fast_adaptive_softmax.cpp).
            const float max_var = steps_.set_stats(ArmSet::candidates, 0.0f).max_var();
            while (max_var > 0 && !(max_var > v / p_.fudge_best)) v /= 2;
            if (max_var == 0) advance(ArmSet::candidates, dp_);
        }
    }
}

// Phase D: arms whose softmax weight needs a tighter estimate are read further (the weights e_i are not refreshed).
void QueryDriver::normalize() {
    const double L = std::log(6.0 * n_ / d_s_);
    const float c2 = static_cast<float>(2 * L); // alpha_i from the variances as estimated: f_ln is on the targets only (629c156)
    const NormSums s = steps_.norm_weights(c2);
    // the CPU's a and b (fails(i): f var_i g_i > a or f var_i e_i > b; the scale of alpha and gamma cancels)
    const double a = p_.epsilon * s.sum_e / (16 * std::sqrt(2.0) * L * s.sum_g);
    const double b = p_.epsilon * p_.epsilon * s.sum_e / (16 * std::log(12 / d_s_));
    const double f = p_.fudge_norm;
    int32_t todo = steps_.norm_filter(true, f, a, b);
    double t = std::min(16, dp_);
    while (todo > 0) {
        advance(ArmSet::todo, std::min(dp_, static_cast<int>(std::ceil(t))));
        todo = steps_.norm_filter(false, f, a, b);
        t = std::min(static_cast<double>(dp_), 1.5 * t);
    }
}

// Phase C (the winner's exact row), D, and the log-sum-exp of the estimates.
head::AdaptiveResult QueryDriver::finish() {
    // The winner: the CPU's partial_sort of S for k = 1 keeps the first strict maximum in S's order, pick_best's arm;
    // a round's reduction over the final candidates computes it (its keep flags are not used).
    const int32_t b = steps_.eliminate_round(0.0f).best;
    const int32_t Tb = steps_.arm_T(b);
    if (Tb < dp_) {
        steps_.exact_arm(b);
        cost_.samples += dp_ - Tb;
    }
    cost_.best_arm = cost_.samples - cost_.warmup;
    normalize();
    cost_.normalizer = cost_.samples - cost_.warmup - cost_.best_arm;
    head::AdaptiveResult r;
    r.head.log_norm = steps_.sum_exp_mu().log_sum_exp();
    const float mu_b = steps_.arm_mu(b);
    r.head.top = {b};
    r.head.top_logits = {mu_b};
    r.head.p_top = static_cast<float>(std::exp(mu_b - r.head.log_norm));
    r.cost = cost_;
    return r;
}

head::AdaptiveResult QueryDriver::run() {
    if (dp_ == 0) return head::all_logits_tied(n_, 1);
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
