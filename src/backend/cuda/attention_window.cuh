#pragma once
// The sliding window of a row's keys (AttentionParams::window) and the soft cap of its scores (AttentionParams::softcap),
// for the dense attention kernels of attention.cu and attention_tiles.cu.

namespace winnow::cuda {

// The first key of the row at q_pos with a sliding window of `window` keys (0: none): the row attends to keys
// (q_pos - window, q_pos]. AttentionParams::first_key's twin.
__host__ __device__ __forceinline__ int first_key(int q_pos, int window) { return window > 0 && q_pos >= window ? q_pos - window + 1 : 0; }

// A scaled score under Gemma 2's soft cap (0: none): cap * tanh(s / cap). cpu::softcap_scores's twin.
__device__ __forceinline__ float softcap_score(float s, float cap) { return cap > 0.0f ? cap * tanhf(s / cap) : s; }

} // namespace winnow::cuda
