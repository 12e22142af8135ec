#pragma once
// The canonical weight layout every architecture and file format is mapped onto.
// Matrices are [rows = out features, cols = in features], each row contiguous in its stored type
// (quantized blocks run along a row); y = W x. Small vectors (norms, biases) are converted to fp32.
#include <cstdint>
#include <string>
#include <vector>

#include "io/ggml_type.h"

namespace winnow {

struct Matrix {
    GgmlType type = GgmlType::F32;
    int64_t rows = 0;
    int64_t cols = 0;
    size_t row_bytes = 0;
    const uint8_t* data = nullptr;
    std::string name; // as stored in the file, for messages
    const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes; }
    bool empty() const { return data == nullptr; }
    // A view of rows [first, first + count).
    Matrix row_slice(int64_t first, int64_t count) const;
};

using Vector = std::vector<float>; // empty when the architecture has no such parameter

struct LayerWeights {
    Vector attn_norm, attn_norm_b;
    Matrix wq, wk, wv, wo;
    Vector bq, bk, bv, bo;
    Vector q_norm, k_norm; // [head_dim] RMSNorm weights of each q and k head before RoPE (qwen3); empty when none
    Vector ffn_norm, ffn_norm_b;
    Matrix w_gate, w_up, w_down; // w_gate only for the gated FFNs (llama computation)
    Vector b_up, b_down;
    // Gemma's RMSNorms of the attention's and the FFN's outputs before each residual add; empty when none
    Vector post_attn_norm, post_ffn_norm;
};

struct Weights {
    Matrix tok_embd;         // [n_vocab, n_embd]
    Vector pos_embd;         // [n_ctx_train * n_embd], gpt2 only
    Vector out_norm, out_norm_b;
    Matrix output;           // [n_vocab, n_embd]; == tok_embd when the head is tied
    Vector rope_freqs;       // [rope_dim / 2] RoPE angle divisors (Llama 3.1's rope scaling, linear scaling's factor in
                             // every pair); empty when none. Not for a sliding-window layer (Gemma 3 scales its full layers only)
    std::vector<LayerWeights> layers;
};

} // namespace winnow
