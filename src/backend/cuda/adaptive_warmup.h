#pragma once
// Launchers of the GPU AdaptiveSoftmax's warm-up pass and masked step (adaptive_warmup.cu; design: adaptive_warmup_logic.cuh). Every
// pointer in the three structs is device memory; n_arms is normally the layout's stride (n rounded up to 32), whose
// padding arms read the layout's zero padding. Runs in `stream`, does not wait. Not yet a Backend op: the adaptive
// head's later kernels (elimination rounds, exact finish) will make one with it.
#include <cuda_runtime.h>

#include "backend/cuda/adaptive_warmup_logic.cuh"

namespace winnow::cuda::adaptive {

void launch_warm_up(const ColumnLayout& h, const QueryOrder& o, const ArmState& s, int64_t n_arms, int from, int to, bool fresh, float beta,
                    cudaStream_t stream);

// The elimination rounds' masked step (stream_masked_arm): the arms with T == from and active != 0 (active: device
// memory, n_arms entries) through columns [from, to); the others untouched. Runs in `stream`, does not wait.
void launch_stream_masked(const ColumnLayout& h, const QueryOrder& o, const ArmState& s, const int32_t* active, int64_t n_arms, int from, int to,
                          float beta, cudaStream_t stream);

} // namespace winnow::cuda::adaptive
