#include "backend/cuda/gpu_fast_adaptive_softmax.h"

#include <utility>

namespace winnow::cuda::adaptive {

GpuFastAdaptiveSoftmax::GpuFastAdaptiveSoftmax(std::shared_ptr<const head::ColumnMajorHead> H, int threads) : gpu_(H), cpu_(std::move(H), threads) {}

head::AdaptiveResult GpuFastAdaptiveSoftmax::run(std::span<const float> x, const AdaptiveParams& p) {
    if (p.k == 1) {
        ++gpu_queries_;
        return gpu_.run(x, p);
    }
    ++cpu_queries_;
    return cpu_.run(x, p);
}

} // namespace winnow::cuda::adaptive
