#pragma once
// Launcher of the GPU AdaptiveSoftmax's elimination round reduction (adaptive_rounds.cu; what it computes and why it
// equals the CPU loop: adaptive_rounds_logic.cuh). Every pointer is device memory: mu, var, T, in_S and keep hold
// n_arms entries (n_arms < 2^31 - 1, else winnow::Error; normally n, as padding arms must not be in S), `result` one
// RoundResult (8-byte aligned: a 64-bit atomic updates its key), which it overwrites. Runs in `stream` (three launches), does not wait. k == 1 only.
#include <cuda_runtime.h>

#include "backend/cuda/adaptive_rounds_logic.cuh"

namespace winnow::cuda::adaptive {

void launch_eliminate_round(const float* mu, const float* var, const int32_t* T, const uint8_t* in_S, uint8_t* keep, int64_t n_arms, int dp,
                            float width2, RoundResult* result, cudaStream_t stream);

} // namespace winnow::cuda::adaptive
