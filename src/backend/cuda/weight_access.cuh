#pragma once
// Reading one element of a stored weight row on the device, for every type the CPU backend computes with. The
// values are exactly what winnow::dequantize_row (src/io/quant.cpp, src/io/quant_preset.cpp) gives: products and
// sums as separate fp32 operations (no fused multiply-add), fp16/bf16 converted exactly. Bytes are read one at a time
// because quantized blocks (18, 20, 22, 34, 110, 210 bytes) leave the fp16 scales unaligned.
#include <cstdint>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <string>

#include "backend/cuda/preset_block_logic.cuh"
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

// Element `col` of a row stored as one of the preset types (io/quant.h), as io/quant_preset.cpp computes it.
template <GgmlType T>
__device__ __forceinline__ float preset_weight_at(const uint8_t* __restrict__ row, int64_t col) {
    namespace rl = preset_logic;
    auto u32_at = [](const uint8_t* p) { return static_cast<uint32_t>(load_u16(p)) | static_cast<uint32_t>(load_u16(p + 2)) << 16; };
    if constexpr (T == GgmlType::Q5_0 || T == GgmlType::Q5_1) {
        constexpr bool kMin = T == GgmlType::Q5_1;
        const uint8_t* b = row + (col / 32) * (kMin ? rl::kQ5_1Bytes : rl::kQ5_0Bytes);
        const uint8_t* qh = b + (kMin ? 4 : 2);
        const int q = rl::q5_value(qh + 4, u32_at(qh), static_cast<int>(col % 32));
        const float d = half_bits_to_float(load_u16(b));
        if constexpr (kMin) return __fadd_rn(__fmul_rn(static_cast<float>(q), d), half_bits_to_float(load_u16(b + 2)));
        else return __fmul_rn(static_cast<float>(q - 16), d);
    } else if constexpr (T == GgmlType::Q4_K || T == GgmlType::Q5_K) {
        constexpr bool kFive = T == GgmlType::Q5_K;
        const uint8_t* b = row + (col / rl::kKElements) * (kFive ? rl::kQ5_KBytes : rl::kQ4_KBytes);
        const rl::KPairPos at = rl::k_pair_pos(static_cast<int>(col % rl::kKElements));
        const rl::ScaleMin s = rl::k_scale_min(b + 4, 2 * at.pair + at.e / 32);
        const uint8_t* qs = b + (kFive ? 48 : 16) + 32 * at.pair;
        const int q = kFive ? rl::q5_k_value(qs, b + 16, at.pair, at.e) : rl::q4_k_value(qs, at.e);
        const float ds = __fmul_rn(half_bits_to_float(load_u16(b)), static_cast<float>(s.scale));
        const float dm = __fmul_rn(half_bits_to_float(load_u16(b + 2)), static_cast<float>(s.min));
        return __fsub_rn(__fmul_rn(ds, static_cast<float>(q)), dm);
    } else if constexpr (T == GgmlType::IQ4_NL) { // d * value[q]
        const uint8_t* b = row + (col / 32) * rl::kIQ4_NLBytes;
        const int q = rl::iq4_nl_value(b + 2, static_cast<int>(col % 32));
        return __fmul_rn(half_bits_to_float(load_u16(b)), static_cast<float>(q));
    } else if constexpr (T == GgmlType::IQ4_XS) { // (d * (s - 32)) * value[q]
        const uint8_t* b = row + (col / rl::kKElements) * rl::kIQ4_XSBytes;
        const int e = static_cast<int>(col % rl::kKElements), j = e / 32;
        const int q = rl::iq4_nl_value(b + 8 + 16 * j, e % 32);
        const float dl = __fmul_rn(half_bits_to_float(load_u16(b)), static_cast<float>(rl::iq4_xs_scale(u32_at(b), u32_at(b + 4), j) - 32));
        return __fmul_rn(dl, static_cast<float>(q));
    } else if constexpr (T == GgmlType::Q2_K) { // (d * (sc & 15)) * q - dmin * (sc >> 4)
        const uint8_t* b = row + (col / rl::kKElements) * rl::kQ2_KBytes;
        const rl::Q6Pos at = rl::q6_k_pos(static_cast<int>(col % rl::kKElements));
        const int q = rl::q2_k_value(b + 16 + 32 * at.half, at.quarter, at.l);
        const unsigned sc = b[at.scale];
        const float dl = __fmul_rn(half_bits_to_float(load_u16(b + 80)), static_cast<float>(sc & 0x0fu));
        const float ml = __fmul_rn(half_bits_to_float(load_u16(b + 82)), static_cast<float>(sc >> 4));
        return __fsub_rn(__fmul_rn(dl, static_cast<float>(q)), ml);
    } else if constexpr (T == GgmlType::Q3_K) { // (d * (s - 32)) * q
        const uint8_t* b = row + (col / rl::kKElements) * rl::kQ3_KBytes;
        const rl::Q6Pos at = rl::q6_k_pos(static_cast<int>(col % rl::kKElements));
        const int q = rl::q3_k_value(b + 32 + 32 * at.half, b, at.half, at.quarter, at.l);
        const float ds = __fmul_rn(half_bits_to_float(load_u16(b + 108)), static_cast<float>(rl::q3_k_scale(b + 96, at.scale) - 32));
        return __fmul_rn(ds, static_cast<float>(q));
    } else {
        static_assert(T == GgmlType::Q6_K, "unsupported weight type");
        const uint8_t* b = row + (col / rl::kKElements) * rl::kQ6_KBytes;
        const rl::Q6Pos at = rl::q6_k_pos(static_cast<int>(col % rl::kKElements));
        const int q = rl::q6_k_value(b + 64 * at.half + 32 * (at.quarter & 1), b + 128 + 32 * at.half, at.quarter, at.l);
        const float ds = __fmul_rn(half_bits_to_float(load_u16(b + 208)), static_cast<float>(static_cast<int8_t>(b[192 + at.scale])));
        return __fmul_rn(ds, static_cast<float>(q));
    }
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
    } else if constexpr (T == GgmlType::Q4_1) {
        const Q4_1Parts p = q4_1_parts(row, col);
        return __fadd_rn(__fmul_rn(static_cast<float>(p.q), p.d), p.m);
    } else {
        return preset_weight_at<T>(row, col);
    }
}

[[noreturn]] inline void no_kernel_for(GgmlType t) { // never silently skip a kernel: the callers check supports(), this catches one that did not
    throw Error(ErrorKind::unsupported, std::string("cuda: no kernel for ") + ggml_type_name(t) + " weights");
}

// Calls f.template operator()<T>() for the runtime type, one of the types winnow also writes (is_core_type: F32,
// F16, BF16, Q8_0, Q4_0, Q4_1): the kernels that take no preset type (the adaptive head's, the prefill's split products, the step
// program) instantiate only these.
template <class F>
void dispatch_core_weight_type(GgmlType t, F&& f) {
    switch (t) {
    case GgmlType::F32: f.template operator()<GgmlType::F32>(); return;
    case GgmlType::F16: f.template operator()<GgmlType::F16>(); return;
    case GgmlType::BF16: f.template operator()<GgmlType::BF16>(); return;
    case GgmlType::Q8_0: f.template operator()<GgmlType::Q8_0>(); return;
    case GgmlType::Q4_0: f.template operator()<GgmlType::Q4_0>(); return;
    case GgmlType::Q4_1: f.template operator()<GgmlType::Q4_1>(); return;
    default: no_kernel_for(t);
    }
}

// Calls f.template operator()<T>() for the runtime type, any stored weight type the CUDA kernels read
// (is_device_weight_type): the writable ones and the preset Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS.
template <class F>
void dispatch_weight_type(GgmlType t, F&& f) {
    switch (t) {
    case GgmlType::Q5_0: f.template operator()<GgmlType::Q5_0>(); return;
    case GgmlType::Q5_1: f.template operator()<GgmlType::Q5_1>(); return;
    case GgmlType::IQ4_NL: f.template operator()<GgmlType::IQ4_NL>(); return;
    case GgmlType::IQ4_XS: f.template operator()<GgmlType::IQ4_XS>(); return;
    case GgmlType::Q2_K: f.template operator()<GgmlType::Q2_K>(); return;
    case GgmlType::Q3_K: f.template operator()<GgmlType::Q3_K>(); return;
    case GgmlType::Q4_K: f.template operator()<GgmlType::Q4_K>(); return;
    case GgmlType::Q5_K: f.template operator()<GgmlType::Q5_K>(); return;
    case GgmlType::Q6_K: f.template operator()<GgmlType::Q6_K>(); return;
    default: dispatch_core_weight_type(t, f);
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
