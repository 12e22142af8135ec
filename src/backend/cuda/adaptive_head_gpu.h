#pragma once
// The GPU AdaptiveSoftmax (issue #15 item 2): one query of head::FastAdaptiveSoftmax::run for k = 1 with every per-arm
// step on the device, the CPU path's decisions (adaptive_control.cuh), in one of two loops:
//   * persistent (the default, see QueryLoop): the whole query in one cooperative kernel launch (adaptive_persistent.h), the loop's
//     decisions made on the device; one small copy back per query;
//   * host: the host drives the loop (adaptive_query.h: QueryDriver), one small device -> host copy per decision;
//     each step a few kernels (the first version; tests run it phase by phase).
// The two make the same decisions and give the same bits. The head's column-major layout and its stored rows (for the
// exact finish) are uploaded once, at construction; a query uploads its column order (computed on the host as the CPU
// does: the same Gumbel order and Des Raj coefficients for the same noise seed) and x. A rotated head (a PCA basis,
// head/rotation.h) takes the rotated query y, as the CPU head does; its exact rows get the query turned back (x = R y,
// on the host, d^2 multiply-adds a query). Cluster-centred columns and the exact prefix are CPU-only.
//
// Kernels: adaptive_warmup.cu (warm-up pass, masked stream step), adaptive_rounds.cu (a round's reduction),
// adaptive_head_gpu.cu (set statistics, grouping, exact rows, normalizer, log-sum-exp), adaptive_persistent.cu (all of
// it in one kernel). Their host twins are the *_logic.cuh functions, and HostQuerySteps runs the same query on the
// host: the GPU head's CPU twin.
//
// Written and compiled without a GPU; run on the SIMT emulator (tests/gpu/test_cuda_adaptive_head.cpp holds both loops
// to the twin and to each other), not yet on a GPU.
#include <cstdint>
#include <memory>
#include <span>

#include "backend/cuda/adaptive_query.h"
#include "head/adaptive_algorithm.h"
#include "head/column_major_head.h"

namespace winnow::cuda::adaptive {

class DeviceQuerySteps;

// automatic: persistent, unless the environment sets WINNOW_ADAPTIVE_LOOP=host (the GPU scripts' fallback when the
// persistent kernel fails its first run on a device: the rest of a run then measures the host-driven loop).
enum class QueryLoop { automatic, persistent, host };
// What automatic means here (winnow::Error for a WINNOW_ADAPTIVE_LOOP other than host or persistent).
QueryLoop default_query_loop();

class GpuAdaptiveHead {
public:
    // Uploads H's layout and rows to the current CUDA device, once (winnow::Error without a device).
    explicit GpuAdaptiveHead(std::shared_ptr<const head::ColumnMajorHead> H);
    ~GpuAdaptiveHead();
    GpuAdaptiveHead(const GpuAdaptiveHead&) = delete;
    GpuAdaptiveHead& operator=(const GpuAdaptiveHead&) = delete;

    // One query (k = 1 only): FastAdaptiveSoftmax::run's result. The noise seed is query_noise_seed(p.seed, counter)
    // with a per-object counter, as the CPU head's: the i-th query of each uses the same column order. blocks: the
    // persistent loop's grid (0: as many as the device holds at once, at most one per 256 arms); tests use small ones.
    head::AdaptiveResult run(std::span<const float> x, const AdaptiveParams& p, QueryLoop loop = QueryLoop::automatic, int blocks = 0);
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
