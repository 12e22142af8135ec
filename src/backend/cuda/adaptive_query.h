#pragma once
// One AdaptiveSoftmax query (k = 1) driven from the host, step by step, over an executor of its per-arm steps: the GPU
// head's (adaptive_head_gpu.h: kernels, with one small device -> host copy of a step's result whenever the host needs
// it to decide) or the host's (HostQuerySteps: the same steps as plain loops over the *_logic.cuh functions and the
// CPU's exact rows). QueryDriver runs head::FastAdaptiveSoftmax::run's control flow (adaptive_control.cuh, shared with
// the persistent kernel that keeps the loop on the device), so that with the host executor it reproduces the CPU
// path's survivors, top arm and phase sample counts (tests/ops/test_adaptive_query.cpp), and the GPU executor, whose
// steps equal the host's (tests/gpu/test_cuda_adaptive_head.cpp), does too.
//
// The host-driven loop waits for the device at every decision (a few bytes per step); adaptive_persistent.h runs the
// same loop in one cooperative kernel. advance()'s cost rule is the CPU's default (FastOptions::stream_cost, measured
// on AVX2), kept so that every path makes the same choices; a GPU cost model is later work.
//
// Not done here: k > 1 (the k-th lower bound as the floor), multiply_adds and bytes_read in the cost (0).
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "backend/cuda/adaptive_control.cuh"
#include "backend/cuda/adaptive_norm_logic.cuh"
#include "backend/cuda/adaptive_warmup_logic.cuh"
#include "backend/cpu/vec_dot.h"
#include "head/adaptive_algorithm.h"
#include "head/column_major_head.h"

namespace winnow::cuda::adaptive {

// The per-arm steps of a query. Arms are 0 .. n-1 (the layout's padding arms never belong to a set).
class QuerySteps {
public:
    virtual ~QuerySteps() = default;
    // A new query: its order (host arrays of order.dp entries, used during the call only), x (d values) and beta.
    virtual void begin_query(const QueryOrder& order, std::span<const float> x, float beta) = 0;
    // Every arm through columns [from, to) of the order (warm_up_arm; fresh: sums from zero).
    virtual void warm_up(int from, int to, bool fresh) = 0;
    virtual SetStats set_stats(ArmSet s, float thr) = 0;
    // Marks advance()'s next group of s below target (launch_mark_group); the next stream_marked / exact_marked use it.
    virtual Group mark_group(ArmSet s, int target) = 0;
    virtual void stream_marked(int from, int to) = 0; // stream_masked_arm over the marked arms
    virtual void exact_marked(int count) = 0;         // the marked arms' exact rows (count: the group's)
    virtual void reset_candidates() = 0;              // candidates = every arm
    // One elimination round over the candidates (k = 1): the kept flags and the RoundResult.
    virtual RoundResult eliminate_round(float width2) = 0;
    virtual void keep_survivors() = 0; // candidates = kept
    virtual int32_t arm_T(int32_t i) = 0;
    virtual float arm_mu(int32_t i) = 0;
    virtual void exact_arm(int32_t i) = 0;
    // The normalizer: weights (kept for norm_filter) and their sums; then todo = (first ? all : todo) with fails().
    virtual NormSums norm_weights(float c2) = 0;
    virtual int32_t norm_filter(bool first, double f, double a, double b) = 0;
    virtual SumExp sum_exp_mu() = 0;
    // Tests: mu, var and T of the n arms and the candidate flags.
    virtual void read_state(std::vector<float>& mu, std::vector<float>& var, std::vector<int32_t>& T, std::vector<uint8_t>& candidates) = 0;
};

// A query's constants as the CPU path computes them (every logarithm the control needs; see adaptive_control.cuh).
ControlConstants control_constants(const head::ColumnMajorHead& H, int dp, double sigma2, const AdaptiveParams& p);

// The query's column order and Des Raj coefficients, as FastAdaptiveSoftmax::Query computes them for a noise seed.
struct PreparedQuery {
    std::vector<int32_t> col, blk;
    std::vector<float> xs, coef;
    ControlConstants constants;
    QueryOrder order() const { return {col.data(), blk.data(), xs.data(), coef.data(), constants.dp}; }
};
// Checks p (k = 1 only) and x's length (winnow::Error), then prepares the query.
PreparedQuery prepare_query(const head::ColumnMajorHead& H, std::span<const float> x, const AdaptiveParams& p, uint64_t noise_seed);
// The result from finish()'s parts: p_top and the log-sum-exp as the CPU path gives them.
head::AdaptiveResult query_result(const ControlFinish& f, const ControlCost& c, const ControlConstants& k);

// FastAdaptiveSoftmax::run's control flow for k = 1 over `steps` (which must belong to H). One object per query.
class QueryDriver {
public:
    QueryDriver(const head::ColumnMajorHead& H, QuerySteps& steps, std::span<const float> x, const AdaptiveParams& p, uint64_t noise_seed);
    int d_prime() const { return q_.constants.dp; }
    void warm_up() { control_.warm_up(); }
    // Successive elimination; false when stopped after max_rounds rounds (tests: the survivors after round r).
    bool eliminate(int max_rounds = std::numeric_limits<int>::max()) { return control_.eliminate(max_rounds); }
    // After eliminate(): the winner's exact row, the normalizer, the log-sum-exp; the result.
    head::AdaptiveResult finish() { return query_result(control_.finish(), control_.cost(), q_.constants); }
    // The whole query (all logits tied when x is zero on every column the head uses).
    head::AdaptiveResult run();
    head::AdaptiveCost cost() const;

private:
    PreparedQuery q_;
    QueryControl<QuerySteps> control_;
};

// The host executor: the steps as loops over the logic headers' per-arm functions (bit for bit the kernels' streaming
// and reductions) and the CPU's exact rows (ColumnMajorHead::row_dot, the CPU path's bits; the GPU's warp dot product
// rounds differently). The CPU twin of the GPU head's query.
class HostQuerySteps final : public QuerySteps {
public:
    explicit HostQuerySteps(const head::ColumnMajorHead& H);
    void begin_query(const QueryOrder& order, std::span<const float> x, float beta) override;
    void warm_up(int from, int to, bool fresh) override;
    SetStats set_stats(ArmSet s, float thr) override;
    Group mark_group(ArmSet s, int target) override;
    void stream_marked(int from, int to) override;
    void exact_marked(int count) override;
    void reset_candidates() override;
    RoundResult eliminate_round(float width2) override;
    void keep_survivors() override;
    int32_t arm_T(int32_t i) override { return T_[i]; }
    float arm_mu(int32_t i) override { return mu_[i]; }
    void exact_arm(int32_t i) override;
    NormSums norm_weights(float c2) override;
    int32_t norm_filter(bool first, double f, double a, double b) override;
    SumExp sum_exp_mu() override;
    void read_state(std::vector<float>& mu, std::vector<float>& var, std::vector<int32_t>& T, std::vector<uint8_t>& candidates) override;

private:
    std::vector<uint8_t>& set(ArmSet s);
    ArmState state() { return {K_.data(), Z_.data(), Z2_.data(), mu_.data(), var_.data(), T_.data()}; }
    const head::ColumnMajorHead& H_;
    ColumnLayout layout_;
    int n_;
    std::vector<int32_t> col_, blk_;
    std::vector<float> xs_, coef_;
    QueryOrder order_;
    float beta_ = 1.0f;
    head::ExactQuery exact_x_;
    std::vector<float> x_;
    std::vector<float> K_, Z_, Z2_, mu_, var_, e_; // stride entries (e: n)
    std::vector<int32_t> T_, active_, list_;
    std::vector<uint8_t> all_, candidates_, kept_, todo_;
};

} // namespace winnow::cuda::adaptive
