#pragma once
// The fast AdaptiveSoftmax with its top-1 queries on the GPU (issue #15 item 4: generate --device cuda --head
// adaptive): an AdaptiveAlgorithm whose run() for k = 1 is GpuAdaptiveHead's query, FastAdaptiveSoftmax::run's
// decisions with every per-arm step on the device (its host twin makes FastAdaptiveSoftmax's decisions bit for bit:
// AdaptiveQueryHost; the device's exact rows round differently, so its counts may differ at a decision's edge), and
// whose k > 1 queries and calibration (best_arms_only) run the CPU fast head over the same
// column-major head. It answers to the fast head's calibration entries ("fast"): the same procedure, the same factors.
// Each of the two keeps its own query counter for the noise seeds, so a session that mixes k = 1 and k > 1 queries
// draws other column orders than a CPU-only one would (the guarantee is per query and does not care).
#include <cstdint>
#include <memory>

#include "backend/cuda/adaptive_head_gpu.h"
#include "head/fast_adaptive_softmax.h"
#include "winnow/error.h"

namespace winnow::cuda::adaptive {

class GpuFastAdaptiveSoftmax final : public head::AdaptiveAlgorithm {
public:
    // Uploads the head to the current CUDA device (winnow::Error without one); threads: the CPU fast head's.
    GpuFastAdaptiveSoftmax(std::shared_ptr<const head::ColumnMajorHead> H, int threads);
    head::AdaptiveResult run(std::span<const float> x, const AdaptiveParams& p) override;
    std::vector<int32_t> best_arms_only(std::span<const float> x, const AdaptiveParams& p) override { return cpu_.best_arms_only(x, p); }
    int n() const override { return cpu_.n(); }
    int d() const override { return cpu_.d(); }
    const char* name() const override { return "fast (GPU for top-1)"; }
    double max_fudge_norm() const override { return cpu_.max_fudge_norm(); }
    // The top-1 queries read on the device, where nothing records them: a recorder is refused rather than left empty.
    void set_read_recorder(head::ReadRecorder* r) override {
        if (r) throw Error(ErrorKind::unsupported, "adaptive head: the GPU head cannot record its reads (they happen on the device)");
    }
    // Queries answered so far on the GPU (k = 1) and on the CPU (k > 1).
    uint64_t gpu_queries() const { return gpu_queries_; }
    uint64_t cpu_queries() const { return cpu_queries_; }

private:
    GpuAdaptiveHead gpu_;
    head::FastAdaptiveSoftmax cpu_;
    uint64_t gpu_queries_ = 0, cpu_queries_ = 0;
};

} // namespace winnow::cuda::adaptive
