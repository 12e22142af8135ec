#pragma once
// A model's weights placed where one backend's kernels read them: matrices in their stored format (quantized blocks
// included) and the small fp32 vectors (norms, biases, gpt2's position table) as tensors. A matrix of a preset type
// (io/quant.h: Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) that the backend does not compute with is decoded and placed as F16
// (F32 where a value exceeds F16's range); the CPU and CUDA backends take them all (CUDA since 2026-12-06). Any other type a backend lacks is refused by name (Forward's check). For the CPU backend
// everything is a view of the model's own memory (nothing is copied); a device backend uploads each tensor once.
#include <vector>

#include "backend/backend.h"
#include "model/weights.h"

namespace winnow {

struct DeviceLayerWeights {
    Tensor attn_norm, attn_norm_b;
    Matrix wq, wk, wv, wo;
    Tensor bq, bk, bv, bo;
    Tensor q_norm, k_norm; // [1][head_dim], or empty
    Tensor ffn_norm, ffn_norm_b;
    Matrix w_gate, w_up, w_down;
    Tensor b_up, b_down;
    Tensor post_attn_norm, post_ffn_norm; // [1][n_embd], or empty
};

struct DeviceWeights {
    Matrix tok_embd;
    Tensor pos_embd; // [n_ctx_train][n_embd], gpt2 only
    Tensor out_norm, out_norm_b;
    Matrix output;   // shares tok_embd's memory when the head is tied
    Tensor rope_freqs; // [1][rope_dim / 2], or empty
    std::vector<DeviceLayerWeights> layers;
    std::vector<Tensor> storage; // keeps the matrices' device memory alive
    std::vector<std::vector<uint8_t>> converted; // matrices converted for a CPU-like backend that borrows host memory
};

// Whether place_weights converts matrices of this stored type for the backend: a preset type (io/quant.h) that one of
// the backend's linear ops or its embedding lookup does not take. They are placed as F16 (F32 for a matrix with a value
// beyond F16's range).
bool placed_as_f16(const Backend& be, GgmlType type);

// `w` must outlive the result (the CPU backend borrows its memory).
DeviceWeights place_weights(Backend& be, const Weights& w, int n_embd);

} // namespace winnow
