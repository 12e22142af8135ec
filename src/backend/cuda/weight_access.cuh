#pragma once
// Reading one element of a stored weight row on the device, for every type the CPU backend computes with. The
// values are exactly what winnow::dequantize_row (src/io/quant.cpp) gives: products and sums as separate fp32
// operations (no fused multiply-add), fp16/bf16 converted exactly. Bytes are read one at a time because quantized
// blocks (18, 20, 34 bytes) leave the fp16 scales unaligned.
#include <cstdint>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <string>

#include "io/ggml_type.h"
#include "winnow/error.h"

namespace winnow::cuda {

__device__ __forceinline__ uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
__device__ __forceinline__ float half_bits_to_float(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ float bf16_bits_to_float(uint16_t h) { return __uint_as_float(static_cast<uint32_t>(h) << 16); }

// Column `col` of a Q4_1 row, in its parts: the 4-bit q and its block's f16 scale d and minimum m (value d q + m).
struct Q4_1Parts {
    int q;
    float d, m;
};
__device__ __forceinline__ Q4_1Parts q4_1_parts(const uint8_t* __restrict__ row, int64_t col) {
    const uint8_t* b = row + (col / 32) * 20;
    const int j = static_cast<int>(col % 32);
    return {j < 16 ? (b[4 + j] & 0x0f) : (b[4 + j - 16] >> 4), half_bits_to_float(load_u16(b)), half_bits_to_float(load_u16(b + 2))};
}

// Element `col` of a row stored as T.
template <GgmlType T>
__device__ __forceinline__ float weight_at(const uint8_t* __restrict__ row, int64_t col) {
    if constexpr (T == GgmlType::F32) {
        float v;
        memcpy(&v, row + 4 * col, 4);
        return v;
    } else if constexpr (T == GgmlType::F16) {
        return half_bits_to_float(load_u16(row + 2 * col));
    } else if constexpr (T == GgmlType::BF16) {
        return bf16_bits_to_float(load_u16(row + 2 * col));
    } else if constexpr (T == GgmlType::Q8_0) {
        const uint8_t* b = row + (col / 32) * 34;
        return __fmul_rn(static_cast<float>(static_cast<int8_t>(b[2 + col % 32])), half_bits_to_float(load_u16(b)));
    } else if constexpr (T == GgmlType::Q4_0) {
        const uint8_t* b = row + (col / 32) * 18;
        const int j = static_cast<int>(col % 32);
        const int q = j < 16 ? (b[2 + j] & 0x0f) : (b[2 + j - 16] >> 4);
        return __fmul_rn(static_cast<float>(q - 8), half_bits_to_float(load_u16(b)));
    } else { // Q4_1
        static_assert(T == GgmlType::Q4_1, "unsupported weight type");
        const Q4_1Parts p = q4_1_parts(row, col);
        return __fadd_rn(__fmul_rn(static_cast<float>(p.q), p.d), p.m);
    }
}

// Calls f.template operator()<T>() for the runtime type (one of the six weight types).
template <class F>
void dispatch_weight_type(GgmlType t, F&& f) {
    switch (t) {
    case GgmlType::F32: f.template operator()<GgmlType::F32>(); return;
    case GgmlType::F16: f.template operator()<GgmlType::F16>(); return;
    case GgmlType::BF16: f.template operator()<GgmlType::BF16>(); return;
    case GgmlType::Q8_0: f.template operator()<GgmlType::Q8_0>(); return;
    case GgmlType::Q4_0: f.template operator()<GgmlType::Q4_0>(); return;
    case GgmlType::Q4_1: f.template operator()<GgmlType::Q4_1>(); return;
    default: // never silently skip a kernel: the callers check supports(), this catches one that did not
        throw Error(ErrorKind::unsupported, std::string("cuda: no kernel for ") + ggml_type_name(t) + " weights");
    }
}

// Activations / KV cache elements: F32, F16 or BF16.
template <GgmlType T>
__device__ __forceinline__ float load_act(const void* p, int64_t i) {
    if constexpr (T == GgmlType::F32) return static_cast<const float*>(p)[i];
    else if constexpr (T == GgmlType::F16) return __half2float(static_cast<const __half*>(p)[i]);
    else return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
}

template <GgmlType T>
__device__ __forceinline__ void store_act(void* p, int64_t i, float v) {
    if constexpr (T == GgmlType::F32) static_cast<float*>(p)[i] = v;
    else if constexpr (T == GgmlType::F16) static_cast<__half*>(p)[i] = __float2half_rn(v);
    else static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
}

template <class F>
void dispatch_act_type(GgmlType t, F&& f) {
    switch (t) {
    case GgmlType::F32: f.template operator()<GgmlType::F32>(); return;
    case GgmlType::F16: f.template operator()<GgmlType::F16>(); return;
    case GgmlType::BF16: f.template operator()<GgmlType::BF16>(); return;
    default: break;
    }
}

// Sum over the warp, the result in every lane (an xor butterfly: offsets 16, 8, 4, 2, 1). Float or int.
template <class T>
__device__ __forceinline__ T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result. `scratch` holds 32.
template <class T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
    v = warp_sum(v);
    __syncthreads(); // scratch may still be read by a previous call
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < n_warps ? scratch[lane] : T(0);
    return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float* scratch) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < n_warps ? scratch[lane] : -INFINITY;
    return warp_max(v);
}

} // namespace winnow::cuda
