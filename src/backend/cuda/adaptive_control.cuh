#pragma once
// The control flow of one AdaptiveSoftmax query (k = 1), written once for the host and the device: what
// head::FastAdaptiveSoftmax::run decides (warm-up targets, pull_to_var's schedule, advance()'s grouping by prefix
// length and its stream-or-exact cost rule, the elimination loop and its "nothing moved" skip, the normalizer's loop,
// the sample counts), decision for decision, over an executor of per-arm steps (Steps, adaptive_query.h's QuerySteps
// interface). Two users:
//   * QueryDriver (adaptive_query.h), on the host, over the host twin or over the GPU's kernels with one small copy
//     back per decision;
//   * the persistent kernel (adaptive_persistent.cu), where every thread of a cooperative grid runs this same code
//     over grid-wide steps, so the loop never leaves the device.
// Every constant that needs a logarithm is computed once on the host (control_constants, adaptive_query.cpp), and the
// rest is IEEE arithmetic that nvcc cannot contract (the one product that feeds a subtraction is rounded with
// dmul_rn; advance()'s (1 - share)^8 is three squarings, on the CPU path too, where the device's pow could differ from
// the host's in the last ulp), so both run the same bits through the same comparisons.
#include <cmath>
#include <cstdint>
#include <math.h>

#include "backend/cuda/adaptive_norm_logic.cuh" // SetStats, Group, NormSums, SumExp; RoundResult via the rounds' logic

#if defined(__CUDACC__)
#define WINNOW_CONTROL_FN __host__ __device__
#else
#define WINNOW_CONTROL_FN inline
#endif

namespace winnow::cuda::adaptive {

// The arm sets the control names. candidates: the elimination's S; kept: a round's survivors; todo: the normalizer's.
enum class ArmSet { all, candidates, kept, todo };

// A query's constants (control_constants() computes them on the host with the CPU path's expressions).
struct ControlConstants {
    int n = 0, dp = 0;          // arms, d' (the query's nonzero columns)
    double d = 0, stride = 0;   // the head's d and arm stride (advance()'s cost rule)
    double stream_cost = 0;     // FastOptions::stream_cost
    float warm_thr = 0;         // the warm-up's variance threshold 1 / (17 L) / f_ln
    int warm_cap = 0;           // its prefix cap, floor(warmup_cap d') (at least 1)
    double v0 = 0;              // the first round's variance target sigma^2 / 4
    float width2 = 0;           // c_i^2 = width2 * var_i in the rounds
    double fudge_best = 1, fudge_norm = 1, epsilon = 0;
    float norm_c2 = 0;          // 2 L of the normalizer (alpha_i)
    double norm_a_scale = 0;    // 16 sqrt(2) L: a = epsilon sum_e / (norm_a_scale sum_g)
    double norm_b_scale = 0;    // 16 log(12 / delta_s): b = epsilon^2 sum_e / norm_b_scale
};

// Samples added by each phase (head::AdaptiveCost's counters).
struct ControlCost {
    int64_t samples = 0, warmup = 0, best_arm = 0, normalizer = 0;
};

// What finish() leaves: the winner, its exact logit, the log-sum-exp's parts.
struct ControlFinish {
    int32_t best = -1;
    float mu_best = 0.0f;
    SumExp sums;
};

WINNOW_CONTROL_FN int min_int(int a, int b) { return a < b ? a : b; }
WINNOW_CONTROL_FN int max_int(int a, int b) { return a > b ? a : b; }
WINNOW_CONTROL_FN double min_double(double a, double b) { return a < b ? a : b; }

template <class Steps>
class QueryControl {
public:
    WINNOW_CONTROL_FN QueryControl(Steps& steps, const ControlConstants& c) : steps_(steps), c_(c) {}

    // Phase A. The CPU tests var > thr over every arm; pull_failing adds T < d', which changes nothing here: inside
    // the loop every arm has read cur < cap <= d' columns.
    WINNOW_CONTROL_FN void warm_up() {
        double t = min_int(16, c_.warm_cap);
        int cur = 0;
        while (cur < c_.warm_cap) {
            if (cur > 0 && !steps_.set_stats(ArmSet::all, c_.warm_thr).failing) break;
            const int target = min_int(max_int(static_cast<int>(ceil(t)), cur + 1), c_.warm_cap); // std::clamp
            steps_.warm_up(cur, target, cur == 0);
            cost_.samples += static_cast<int64_t>(c_.n) * (target - cur);
            cur = target;
            t *= 1.5;
        }
        cost_.warmup = cost_.samples;
    }

    // Phase B for k = 1: rounds until one candidate is left or all are exact; false when stopped after max_rounds.
    WINNOW_CONTROL_FN bool eliminate(int max_rounds = 0x7fffffff) {
        steps_.reset_candidates();
        candidates_ = c_.n;
        double v = c_.v0;
        for (int round = 1;; ++round) {
            const int64_t before = cost_.samples;
            pull_to_var(static_cast<float>(v / c_.fudge_best));
            const bool pulled = cost_.samples != before;
            const RoundResult r = steps_.eliminate_round(c_.width2);
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
                while (max_var > 0 && !(max_var > v / c_.fudge_best)) v /= 2;
                if (max_var == 0) advance(ArmSet::candidates, c_.dp);
            }
        }
    }

    // Phase C (the winner's exact row), D (the normalizer), and the log-sum-exp's parts.
    WINNOW_CONTROL_FN ControlFinish finish() {
        // The winner: the CPU's partial_sort of S for k = 1 keeps the first strict maximum in S's order, pick_best's
        // arm; a round's reduction over the final candidates computes it (its keep flags are not used).
        ControlFinish f;
        f.best = steps_.eliminate_round(0.0f).best;
        const int32_t Tb = steps_.arm_T(f.best);
        if (Tb < c_.dp) {
            steps_.exact_arm(f.best);
            cost_.samples += c_.dp - Tb;
        }
        cost_.best_arm = cost_.samples - cost_.warmup;
        normalize();
        cost_.normalizer = cost_.samples - cost_.warmup - cost_.best_arm;
        f.sums = steps_.sum_exp_mu();
        f.mu_best = steps_.arm_mu(f.best);
        return f;
    }

    WINNOW_CONTROL_FN const ControlCost& cost() const { return cost_; }

private:
    // advance(): the arms of s below target, one prefix length at a time (shortest first), each group streamed or read
    // exactly by the CPU's cost rule. A group's arms end at target or d', so the next group's prefix is longer.
    WINNOW_CONTROL_FN void advance(ArmSet s, int target) {
        for (;;) {
            const Group g = steps_.mark_group(s, target);
            if (g.count == 0) return;
            const int from = g.from;
            // (1 - share)^8 by squarings, as the CPU path computes it: the same bits on the host and the device
            const double share = static_cast<double>(g.count) / c_.n, q = 1 - share, q2 = q * q, q4 = q2 * q2;
            const double vectors = c_.stride / 8.0 * (1 - dmul_rn(q4, q4)); // dmul_rn: nvcc would fuse it into the subtraction
            const double stream_cost = c_.stream_cost * vectors * 8 * (target - from), exact_cost = static_cast<double>(g.count) * c_.d;
            if (target >= c_.dp || exact_cost <= stream_cost) {
                steps_.exact_marked(g.count);
                cost_.samples += static_cast<int64_t>(g.count) * (c_.dp - from);
            } else {
                steps_.stream_marked(from, target);
                cost_.samples += static_cast<int64_t>(g.count) * (target - from);
            }
        }
    }

    // PullToVar over the candidates, batched: all of them to the same prefix length until each variance is under thr.
    WINNOW_CONTROL_FN void pull_to_var(float thr) {
        const double dp = c_.dp;
        double t = min_int(16, c_.dp);
        SetStats st = steps_.set_stats(ArmSet::candidates, thr);
        const int shortest = min_int(c_.dp, static_cast<int>(st.min_T)); // steps that advance nobody are skipped
        while (ceil(t) <= shortest && t < dp) t = min_double(dp, 1.5 * t);
        while (st.failing) {
            advance(ArmSet::candidates, min_int(c_.dp, static_cast<int>(ceil(t))));
            t = min_double(dp, 1.5 * t);
            st = steps_.set_stats(ArmSet::candidates, thr);
        }
    }

    // Phase D: arms whose softmax weight needs a tighter estimate are read further (the weights e_i are not refreshed).
    WINNOW_CONTROL_FN void normalize() {
        const NormSums s = steps_.norm_weights(c_.norm_c2);
        // the CPU's a and b (fails(i): f var_i g_i > a or f var_i e_i > b; the scale of alpha and gamma cancels)
        const double a = c_.epsilon * s.sum_e / (c_.norm_a_scale * s.sum_g);
        const double b = c_.epsilon * c_.epsilon * s.sum_e / c_.norm_b_scale;
        const double f = c_.fudge_norm;
        int32_t todo = steps_.norm_filter(true, f, a, b);
        double t = min_int(16, c_.dp);
        while (todo > 0) {
            advance(ArmSet::todo, min_int(c_.dp, static_cast<int>(ceil(t))));
            todo = steps_.norm_filter(false, f, a, b);
            t = min_double(static_cast<double>(c_.dp), 1.5 * t);
        }
    }

    Steps& steps_;
    ControlConstants c_;
    ControlCost cost_;
    int32_t candidates_ = 0; // |S|
};

} // namespace winnow::cuda::adaptive
