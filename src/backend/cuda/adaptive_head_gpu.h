#pragma once
// The GPU AdaptiveSoftmax, first complete version (issue #15 item 2): one query of head::FastAdaptiveSoftmax::run for
// k = 1 with every per-arm step on the device, the host driving the loop (adaptive_query.h: QueryDriver, the CPU
// path's decisions; one small device -> host copy per decision, which a persistent kernel or graph conditionals will
// remove once a GPU can measure them). The head's column-major layout and its stored rows (for the exact finish) are
// uploaded once, at construction; a query uploads its column order (computed on the host as the CPU does: the same
// Gumbel order and Des Raj coefficients for the same noise seed) and x.
//
// Kernels: adaptive_warmup.cu (warm-up pass, masked stream step), adaptive_rounds.cu (a round's reduction),
// adaptive_head_gpu.cu (set statistics, grouping, exact rows, normalizer, log-sum-exp). Their host twins are the
// *_logic.cuh functions, and HostQuerySteps runs the same query on the host: the GPU head's CPU twin.
//
// Written and compiled without a GPU: not yet run on one (tests/gpu/test_cuda_adaptive_head.cpp holds it to the twin).
#include <cstdint>
#include <memory>
#include <span>

#include "backend/cuda/adaptive_query.h"
#include "head/adaptive_algorithm.h"
#include "head/column_major_head.h"

namespace winnow::cuda::adaptive {

class DeviceQuerySteps;

class GpuAdaptiveHead {
public:
    // Uploads H's layout and rows to the current CUDA device, once (winnow::Error without a device).
    explicit GpuAdaptiveHead(std::shared_ptr<const head::ColumnMajorHead> H);
    ~GpuAdaptiveHead();
    GpuAdaptiveHead(const GpuAdaptiveHead&) = delete;
    GpuAdaptiveHead& operator=(const GpuAdaptiveHead&) = delete;

    // One query (k = 1 only): FastAdaptiveSoftmax::run's result. The noise seed is query_noise_seed(p.seed, counter)
    // with a per-object counter, as the CPU head's: the i-th query of each uses the same column order.
    head::AdaptiveResult run(std::span<const float> x, const AdaptiveParams& p);
    // The next query's driver (the seed run() would use), for running it phase by phase (tests), over steps().
    QueryDriver begin(std::span<const float> x, const AdaptiveParams& p);
    QuerySteps& steps();
    const head::ColumnMajorHead& head() const { return *H_; }
    int n() const { return H_->n(); }
    int d() const { return H_->d(); }

private:
    std::shared_ptr<const head::ColumnMajorHead> H_;
    std::unique_ptr<DeviceQuerySteps> steps_;
    uint64_t queries_ = 0;
};

} // namespace winnow::cuda::adaptive
