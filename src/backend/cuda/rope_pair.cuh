#pragma once
// The RoPE rotation of one pair of one head, the only copy of that arithmetic on the device: rope_kernel
// (elementwise.cu, Backend::rope), rope_store_kv_kernel (rope_store_kv.cu) and qkv_rope_store_kernel
// (qkv_rope_store.cu, the fused decode-step ops) all call it, so the fused ops' q, k and cached k cannot drift from
// rope's bits. The angle is computed in double and cos/sin rounded to float, as the reference does
// (ref::rope_cos_sin); the products and sums are explicitly rounded fp32 (__fmul_rn and friends are never contracted
// into an FMA), so the bits do not depend on how a kernel is compiled.
#include <cstdint>

#include "backend/cuda/rope_store_kv_logic.cuh"

namespace winnow::cuda {

// Pair i's dims and their rotated values.
struct RotatedPair {
    int a, b;
    float xa, xb;
};

// The values x0, x1 of pair i's dims (a, b) rotated for position pos: {rotated x0, rotated x1}. freq_factors (or null:
// all 1) divide the angle, as ref::rope_cos_sin does.
__device__ __forceinline__ float2 rope_rotate(float x0, float x1, int i, int rope_dim, int64_t pos, float base, const float* freq_factors) {
    const double factor = freq_factors ? static_cast<double>(freq_factors[i]) : 1.0;
    const double theta = static_cast<double>(pos) * pow(static_cast<double>(base), -2.0 * i / rope_dim) / factor;
    const float c = static_cast<float>(cos(theta)), sn = static_cast<float>(sin(theta));
    return {__fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, sn)), __fadd_rn(__fmul_rn(x0, sn), __fmul_rn(x1, c))};
}

// Pair i (of half = rope_dim / 2) of head xh rotated for position pos (rope_pair_dims: which dims). Reads xh, writes
// nothing: the caller stores the values.
__device__ __forceinline__ RotatedPair rope_rotated_pair(const float* xh, int i, int half, int rope_dim, int64_t pos, float base, bool adjacent,
                                                         const float* freq_factors) {
    const RopePairDims d = rope_pair_dims(i, half, adjacent);
    const float2 r = rope_rotate(xh[d.a], xh[d.b], i, rope_dim, pos, base, freq_factors);
    return {d.a, d.b, r.x, r.y};
}

} // namespace winnow::cuda
