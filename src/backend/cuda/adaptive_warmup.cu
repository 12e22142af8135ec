// The GPU AdaptiveSoftmax's warm-up pass (issue #15 item 2, its first kernel) and the elimination rounds' masked step
// (design and arithmetic: adaptive_warmup_logic.cuh): one thread per arm, a warp's 32 arms reading each sampled column
// as one 32-byte sector of int8 quants (or 4 of fp32). Twins: adaptive::warm_up_host and stream_masked_host, the same
// functions per arm on the host.
#include "backend/cuda/launch.cuh"
#include "backend/cuda/adaptive_warmup.h"

#include "backend/cuda/cuda_check.h"

namespace winnow::cuda::adaptive {

namespace {

__global__ void warm_up_kernel(ColumnLayout h, QueryOrder o, ArmState s, int64_t n_arms, int from, int to, bool fresh, float beta) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n_arms) warm_up_arm(h, o, s, i, from, to, fresh, beta);
}

// One thread per arm as above; a warp whose 32 arms are all unselected reads only their T and active words.
__global__ void stream_masked_kernel(ColumnLayout h, QueryOrder o, ArmState s, const int32_t* active, int64_t n_arms, int from, int to, float beta) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n_arms) stream_masked_arm(h, o, s, active, i, from, to, beta);
}

} // namespace

void launch_warm_up(const ColumnLayout& h, const QueryOrder& o, const ArmState& s, int64_t n_arms, int from, int to, bool fresh, float beta,
                    cudaStream_t stream) {
    if (n_arms <= 0 || from >= to) return;
    constexpr int kThreads = 256;
    const unsigned blocks = static_cast<unsigned>((n_arms + kThreads - 1) / kThreads);
    launch_plain(warm_up_kernel, blocks, kThreads, 0, stream, h, o, s, n_arms, from, to, fresh, beta);
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

void launch_stream_masked(const ColumnLayout& h, const QueryOrder& o, const ArmState& s, const int32_t* active, int64_t n_arms, int from, int to,
                          float beta, cudaStream_t stream) {
    if (n_arms <= 0 || from >= to) return;
    constexpr int kThreads = 256;
    const unsigned blocks = static_cast<unsigned>((n_arms + kThreads - 1) / kThreads);
    launch_plain(stream_masked_kernel, blocks, kThreads, 0, stream, h, o, s, active, n_arms, from, to, beta);
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda::adaptive
