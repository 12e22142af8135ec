// The GPU AdaptiveSoftmax's warm-up pass (issue #15 item 2, its first kernel; design and arithmetic:
// adaptive_warmup_logic.cuh): one thread per arm, a warp's 32 arms reading each sampled column as one 32-byte sector
// of int8 quants (or 4 of fp32). Twin: adaptive::warm_up_host, the same function per arm on the host.
#include "backend/cuda/adaptive_warmup.h"

#include "backend/cuda/cuda_check.h"

namespace winnow::cuda::adaptive {

namespace {

__global__ void warm_up_kernel(ColumnLayout h, QueryOrder o, ArmState s, int64_t n_arms, int from, int to, bool fresh, float beta) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n_arms) warm_up_arm(h, o, s, i, from, to, fresh, beta);
}

} // namespace

void launch_warm_up(const ColumnLayout& h, const QueryOrder& o, const ArmState& s, int64_t n_arms, int from, int to, bool fresh, float beta,
                    cudaStream_t stream) {
    if (n_arms <= 0 || from >= to) return;
    constexpr int kThreads = 256;
    const unsigned blocks = static_cast<unsigned>((n_arms + kThreads - 1) / kThreads);
    warm_up_kernel<<<blocks, kThreads, 0, stream>>>(h, o, s, n_arms, from, to, fresh, beta);
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda::adaptive
