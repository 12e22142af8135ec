#include "backend/cpu/vec_dot.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "backend/cpu/simd.h"
#include "backend/cpu/vec_dot_avx512.h"
#include "backend/cpu/vec_dot_preset.h"
#include "io/quant.h"
#include "winnow/error.h"

namespace winnow::cpu {

namespace {

std::atomic<VecDotKernel> forced_dot_kernel{VecDotKernel::automatic};

bool cpu_has_avx512() { return __builtin_cpu_supports("avx512f"); }

// WINNOW_CPU_DOT_KERNEL, read once; an unknown name or a kernel this CPU lacks is an error (winnow::Error)
VecDotKernel kernel_from_environment() {
    static const VecDotKernel k = [] {
        const char* e = std::getenv("WINNOW_CPU_DOT_KERNEL");
        if (!e || !*e) return VecDotKernel::automatic;
        const std::string v = e;
        const VecDotKernel named = v == "baseline" || v == vec_dot_kernel_name(VecDotKernel::baseline) ? VecDotKernel::baseline
                                   : v == "avx512"                                                      ? VecDotKernel::avx512
                                                                                                        : VecDotKernel::automatic;
        if (named == VecDotKernel::automatic)
            throw Error(ErrorKind::invalid_argument, std::string("WINNOW_CPU_DOT_KERNEL must be baseline (or ") + vec_dot_kernel_name(VecDotKernel::baseline) +
                                                         ") or avx512, not '" + v + "'");
        if (!vec_dot_kernel_available(named)) throw Error(ErrorKind::unsupported, "WINNOW_CPU_DOT_KERNEL=avx512: this CPU has no AVX-512F");
        return named;
    }();
    return k;
}

} // namespace

bool vec_dot_kernel_available(VecDotKernel k) { return k != VecDotKernel::avx512 || cpu_has_avx512(); }

const char* vec_dot_kernel_name(VecDotKernel k) {
    switch (k) {
    case VecDotKernel::automatic: return "automatic";
#ifdef WINNOW_AVX2
    case VecDotKernel::baseline: return "avx2";
#else
    case VecDotKernel::baseline: return "scalar";
#endif
    case VecDotKernel::avx512: return "avx512";
    }
    return "?";
}

VecDotKernel vec_dot_kernel_in_use() {
    static const VecDotKernel best = cpu_has_avx512() ? VecDotKernel::avx512 : VecDotKernel::baseline;
    VecDotKernel k = forced_dot_kernel.load(std::memory_order_relaxed);
    if (k == VecDotKernel::automatic) k = kernel_from_environment();
    return k == VecDotKernel::automatic ? best : k;
}

void vec_dot_force_kernel(VecDotKernel k) {
    if (!vec_dot_kernel_available(k)) throw Error(ErrorKind::unsupported, std::string("this CPU cannot run the ") + vec_dot_kernel_name(k) + " dot kernel");
    forced_dot_kernel.store(k);
}

void prepare_activation(GgmlType type, const float* x, size_t n, PreparedActivation& out) {
    out.x = x;
    (void)vec_dot_kernel_in_use(); // a bad WINNOW_CPU_DOT_KERNEL fails here, before the rows' parallel loop
    if (type != GgmlType::Q4_0 && type != GgmlType::Q4_1 && !preset_needs_block_sums(type)) {
        out.block_sums.clear(); // none for this type (its kernel reads none)
        return;
    }
    const size_t len = is_preset_type(type) ? static_cast<size_t>(preset_block_sum_length(type)) : kQuantBlock;
    const size_t nb = n / len;
    out.block_sums.resize(nb);
    for (size_t b = 0; b < nb; ++b) {
        const float* xb = x + b * len;
        float s = 0.0f;
        for (size_t j = 0; j < len; ++j) s += xb[j];
        out.block_sums[b] = s;
    }
}

#ifdef WINNOW_AVX2
namespace {

// 8 bytes (the low half of v) widened to 8 floats
inline __m256 u8x8_to_ps(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)); }
inline __m256 i8x8_to_ps(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)); }

// sum_j q_j * x_j over one block of 32 nibbles (0..15; weight j < 16 in the low nibble of byte j, weight j + 16 in
// its high nibble), unscaled, in 8 lanes.
inline __m256 nibble_block_dot(const uint8_t* qs, const float* x) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m128i lo = _mm_and_si128(raw, _mm_set1_epi8(0x0f)), hi = _mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0f));
    __m256 p = _mm256_mul_ps(u8x8_to_ps(lo), _mm256_loadu_ps(x));
    p = _mm256_fmadd_ps(u8x8_to_ps(_mm_unpackhi_epi64(lo, lo)), _mm256_loadu_ps(x + 8), p);
    __m256 p2 = _mm256_mul_ps(u8x8_to_ps(hi), _mm256_loadu_ps(x + 16));
    p2 = _mm256_fmadd_ps(u8x8_to_ps(_mm_unpackhi_epi64(hi, hi)), _mm256_loadu_ps(x + 24), p2);
    return _mm256_add_ps(p, p2);
}

// sum_j q_j * x_j over one block of 32 signed bytes, unscaled, in 8 lanes.
inline __m256 int8_block_dot(const int8_t* qs, const float* x) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)), b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs + 16));
    __m256 p = _mm256_mul_ps(i8x8_to_ps(a), _mm256_loadu_ps(x));
    p = _mm256_fmadd_ps(i8x8_to_ps(_mm_unpackhi_epi64(a, a)), _mm256_loadu_ps(x + 8), p);
    __m256 p2 = _mm256_mul_ps(i8x8_to_ps(b), _mm256_loadu_ps(x + 16));
    p2 = _mm256_fmadd_ps(i8x8_to_ps(_mm_unpackhi_epi64(b, b)), _mm256_loadu_ps(x + 24), p2);
    return _mm256_add_ps(p, p2);
}

// the fp16 at p, p + stride, ..., p + 7 stride, as 8 floats
inline __m256 halves_strided(const uint8_t* p, size_t stride) {
    uint16_t h[8];
    for (int k = 0; k < 8; ++k) std::memcpy(&h[k], p + k * stride, 2);
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h)));
}

// sum over blocks of d_b * (sum_j q_j x_j) + off_b * (sum_j x_j) for Q4_0 (off = -8 d), Q4_1 (off = m) and Q8_0
// (off = 0). Blocks go 8 at a time: their unscaled dot products become one vector of 8 block totals, so the scales
// are converted and applied by vector operations, not one block at a time.
template <GgmlType T>
float quant_row_dot(const uint8_t* row, const float* x, const float* block_sums, size_t nb) {
    constexpr size_t stride = T == GgmlType::Q4_1 ? sizeof(BlockQ4_1) : T == GgmlType::Q4_0 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
    constexpr int qs_at = T == GgmlType::Q4_1 ? 4 : 2;
    const auto block_dot = [&](size_t i) {
        const uint8_t* qs = row + i * stride + qs_at;
        if constexpr (T == GgmlType::Q8_0) return int8_block_dot(reinterpret_cast<const int8_t*>(qs), x + i * 32);
        else return nibble_block_dot(qs, x + i * 32);
    };
    __m256 acc = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= nb; i += 8) {
        __m256 s[8];
        for (int k = 0; k < 8; ++k) s[k] = block_dot(i + k);
        const __m256 d = halves_strided(row + i * stride, stride);
        acc = _mm256_fmadd_ps(d, lane_totals(s), acc);
        if constexpr (T == GgmlType::Q4_1) acc = _mm256_fmadd_ps(halves_strided(row + i * stride + 2, stride), _mm256_loadu_ps(block_sums + i), acc);
        if constexpr (T == GgmlType::Q4_0) acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(-8.0f), d), _mm256_loadu_ps(block_sums + i), acc);
    }
    float tail = 0.0f;
    for (; i < nb; ++i) {
        const float d = half_at(row + i * stride);
        tail += d * hsum(block_dot(i));
        if constexpr (T == GgmlType::Q4_1) tail += half_at(row + i * stride + 2) * block_sums[i];
        if constexpr (T == GgmlType::Q4_0) tail += -8.0f * d * block_sums[i];
    }
    return hsum(acc) + tail;
}

} // namespace
#endif

float vec_dot_f32(const float* a, const float* b, size_t n) { return dot_f32(a, b, n); }

float vec_dot(GgmlType type, const void* row, const PreparedActivation& a, size_t n) {
    const float* x = a.x;
    switch (type) {
    case GgmlType::F32:
        return vec_dot_f32(static_cast<const float*>(row), x, n);
    case GgmlType::F16: {
        auto* w = static_cast<const uint16_t*>(row);
        size_t i = 0;
        float s = 0.0f;
#ifdef WINNOW_AVX2
        __m256 acc = _mm256_setzero_ps();
        for (; i + 8 <= n; i += 8)
            acc = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i))), _mm256_loadu_ps(x + i), acc);
        s = hsum(acc);
#endif
        for (; i < n; ++i) s += fp16_to_fp32(w[i]) * x[i];
        return s;
    }
    case GgmlType::BF16: {
        auto* w = static_cast<const uint16_t*>(row);
        size_t i = 0;
        float s = 0.0f;
#ifdef WINNOW_AVX2
        __m256 acc = _mm256_setzero_ps();
        for (; i + 8 <= n; i += 8) {
            const __m256i wi = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i))), 16);
            acc = _mm256_fmadd_ps(_mm256_castsi256_ps(wi), _mm256_loadu_ps(x + i), acc);
        }
        s = hsum(acc);
#endif
        for (; i < n; ++i) s += bf16_to_fp32(w[i]) * x[i];
        return s;
    }
    case GgmlType::Q8_0:
    case GgmlType::Q4_0:
    case GgmlType::Q4_1: {
        const size_t nb = n / kQuantBlock;
        const auto* base = static_cast<const uint8_t*>(row);
        if (vec_dot_kernel_in_use() == VecDotKernel::avx512) return quant_row_dot_avx512(type, base, x, a.block_sums.data(), nb);
#ifdef WINNOW_AVX2
        if (type == GgmlType::Q8_0) return quant_row_dot<GgmlType::Q8_0>(base, x, nullptr, nb);
        if (type == GgmlType::Q4_0) return quant_row_dot<GgmlType::Q4_0>(base, x, a.block_sums.data(), nb);
        return quant_row_dot<GgmlType::Q4_1>(base, x, a.block_sums.data(), nb);
#else
        // w = q*d + m (Q4_1), (q - 8)*d (Q4_0), q*d (Q8_0): dot = sum_b d_b * sum(q x) + off_b * sum(x_b)
        float s = 0.0f;
        for (size_t i = 0; i < nb; ++i) {
            float p = 0.0f;
            if (type == GgmlType::Q8_0) {
                const auto* b = static_cast<const BlockQ8_0*>(row) + i;
                for (int j = 0; j < 32; ++j) p += b->qs[j] * x[i * 32 + j];
                s += half_to_float(b->d) * p;
                continue;
            }
            const bool q41 = type == GgmlType::Q4_1;
            const uint8_t* blk = base + i * (q41 ? sizeof(BlockQ4_1) : sizeof(BlockQ4_0));
            const uint8_t* qs = blk + (q41 ? 4 : 2);
            const float d = half_at(blk), off = q41 ? half_at(blk + 2) : -8.0f * d;
            for (int j = 0; j < 16; ++j) p += (qs[j] & 0x0f) * x[i * 32 + j] + (qs[j] >> 4) * x[i * 32 + j + 16];
            s += d * p + off * a.block_sums[i];
        }
        return s;
#endif
    }
    default:
        if (is_preset_type(type)) return preset_row_dot(type, row, x, a.block_sums.empty() ? nullptr : a.block_sums.data(), n);
        throw Error(ErrorKind::unsupported, std::string("no dot product for tensor type ") + ggml_type_name(type));
    }
}

} // namespace winnow::cpu
