#pragma once
// The RoPE rotation of one pair of one head, the only copy of that arithmetic on the device: rope_kernel
// (elementwise.cu, Backend::rope) and rope_store_kv_kernel (rope_store_kv.cu, the fused decode-step op) both call it,
// so the fused op's q, k and cached k cannot drift from rope's bits. The angle is computed in double and cos/sin
// rounded to float, as the reference does (ref::rope_cos_sin); the products and sums are explicitly rounded fp32
// (__fmul_rn and friends are never contracted into an FMA), so the bits do not depend on how a kernel is compiled.
#include <cstdint>

#include "backend/cuda/rope_store_kv_logic.cuh"

namespace winnow::cuda {

// Pair i's dims and their rotated values.
struct RotatedPair {
    int a, b;
    float xa, xb;
};

// Pair i (of half = rope_dim / 2) of head xh rotated for position pos (rope_pair_dims: which dims). Reads xh, writes
// nothing: the caller stores the values.
__device__ __forceinline__ RotatedPair rope_rotated_pair(const float* xh, int i, int half, int rope_dim, int64_t pos, float base, bool adjacent) {
    const double theta = static_cast<double>(pos) * pow(static_cast<double>(base), -2.0 * i / rope_dim);
    const float c = static_cast<float>(cos(theta)), sn = static_cast<float>(sin(theta));
    const RopePairDims d = rope_pair_dims(i, half, adjacent);
    const float x0 = xh[d.a], x1 = xh[d.b];
    return {d.a, d.b, __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, sn)), __fadd_rn(__fmul_rn(x0, sn), __fmul_rn(x1, c))};
}

} // namespace winnow::cuda
