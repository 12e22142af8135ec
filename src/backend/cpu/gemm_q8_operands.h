#pragma once
// The packed operands of a q8 prefill product (backend/cpu/gemm.h), shared by the kernel translation units. Each
// kernel file is compiled for its own instruction set; this header holds no inline code, so nothing compiled for
// one instruction set can be linked into code that runs on a CPU without it.
#include <cstdint>

namespace winnow::cpu {

constexpr int kQ8TileTokens = 4; // tokens per register tile; xs_tiled is laid out in groups of this many

struct Q8Operands {
    // weights, rows × nb blocks of 32: bytes (unsigned 0..15 for Q4_1; signed q - 8 for Q4_0 and q for Q8_0)
    const uint8_t* wq = nullptr;
    const float* wd = nullptr; // per block scale
    const float* wm = nullptr; // per block offset m (Q4_1 only)
    bool w_signed = false;
    int64_t rows = 0;
    int nb = 0;
    // activations, n_tokens × nb blocks of 32 signed bytes, scale per block
    const int8_t* xq = nullptr;
    const float* xd = nullptr;       // [token][block]
    const float* xs_tiled = nullptr; // d · sum(q) per block (Q4_1 only), [token / 4][block][token % 4], zero-padded
    int n_tokens = 0;
    const float* bias = nullptr; // rows, or null
    float* y = nullptr;          // n_tokens × rows
};

// One token (decode): weights read in their stored blocks (no packing pass), activations as for the tiled product.
enum class Q8WeightKind : uint8_t { q4_1, q4_0, q8_0, q5_0, q5_1, iq4_nl };
struct Q8RowOperands {
    const uint8_t* w = nullptr; // row r at w + r * row_bytes, blocks as ggml stores them
    size_t row_bytes = 0;
    Q8WeightKind kind = Q8WeightKind::q4_1;
    int nb = 0;
    const int8_t* xq = nullptr;
    const float* xd = nullptr;     // per block
    const float* xs = nullptr;     // d · sum(q) per block, fp16-rounded (Q4_1, Q5_1)
    const int32_t* xsum = nullptr; // sum(q) per block (Q4_0, Q5_0, Q8_0: the exact correction for offset weights)
    const float* bias = nullptr;
    float* y = nullptr;
};

// One token against K-quant (and IQ4_XS) weights (super-blocks of 256), the activation in ggml's Q8_K blocks (vec_dot_q8.h's
// BlockQ8_K, whose layout this repeats so that this header stays free of other includes).
enum class Q8KWeightKind : uint8_t { q2_k, q3_k, q4_k, q5_k, q6_k, iq4_xs };
struct Q8KRowOperands {
    const uint8_t* w = nullptr; // row r at w + r * row_bytes
    size_t row_bytes = 0;
    Q8KWeightKind kind = Q8KWeightKind::q4_k;
    int n_super = 0;              // super-blocks per row
    const uint8_t* xk = nullptr;  // n_super Q8_K blocks of 292 bytes: float d, int8 qs[256], int16 bsums[16]
    const float* bias = nullptr;
    float* y = nullptr;
};

// y for weight rows [r0, r1) and every token. Bit-identical to vec_dot_q8 per (row, token) when that is compiled
// with AVX2 (same lanes, same order of additions).
void gemm_q8_rows_avx2(const Q8Operands& p, int64_t r0, int64_t r1);
void gemm_q8_rows_avx512_vnni(const Q8Operands& p, int64_t r0, int64_t r1);
// y[r] for rows [r0, r1) of a one-token product. Not bit-identical to vec_dot_q8: each block's integer dot product
// is exact, but the blocks' scaled sums are added 8 blocks at a time in another order.
void gemv_q8_rows_avx2(const Q8RowOperands& p, int64_t r0, int64_t r1);
void gemv_q8_rows_avx512_vnni(const Q8RowOperands& p, int64_t r0, int64_t r1);
// y[r] for rows [r0, r1) of a one-token K-quant product (AVX2; the AVX-512 VNNI choice runs it too: its integer sums
// need 16-bit products with the sub-block scales, which AVX2's maddubs + madd already give). Agrees with vec_dot_q8
// to fp32 rounding: the integer sums are exact in both, the float additions go in another order.
void gemv_q8k_rows_avx2(const Q8KRowOperands& p, int64_t r0, int64_t r1);

} // namespace winnow::cpu
