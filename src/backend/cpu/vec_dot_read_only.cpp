// The f32 dot mode's product for the read-only weight types (io/quant.h: Q5_0, Q5_1, Q4_K, Q5_K, Q6_K).
//
// Every one of them stores a weight as w = scale * q + offset, with a small integer q and, per sub-block of 16 or 32
// weights, an fp32 scale and offset (ggml's reference decoders compute exactly these two products). So a row is
// decoded a super-block at a time into int8 q values and per-sub-block scales and offsets (byte loops the compiler
// vectorises), and the dot product is
//   sum over sub-blocks of  scale * (sum q x)  +  offset * (sum x),
// with the q x sums in fp32 SIMD lanes and the sums of x per 32 weights prepared once per activation
// (PreparedActivation::block_sums). The result is the decoded row's dot product in another summation order.
#include "backend/cpu/vec_dot_read_only.h"

#include <algorithm>
#include <cstring>

#include "backend/cpu/simd.h"
#include "io/quant.h"

namespace winnow::cpu {

namespace {

// One super-block (256 weights; Q5_0 / Q5_1: 8 blocks of 32) decoded: w[j] = scale[j / len] * q[j] + offset[j / len].
struct Decoded {
    alignas(32) int8_t q[256];
    float scale[16];
    float offset[16]; // 0 where the type has none
    int len;          // weights per sub-block: 16 (Q6_K) or 32
    int subs;         // sub-blocks decoded
};

float half(const uint8_t* p) { return half_at(p); } // F16C where the build has it: exact either way

#ifdef WINNOW_AVX2
// The 32 fifth bits of a Q5 block (bit j of qh for weight j) as 32 bytes of 0x10 or 0.
inline __m256i fifth_bits(uint32_t qh) {
    const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(qh)), // byte j / 8 of qh in byte j
                                              _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3,
                                                               3, 3, 3));
    const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL)); // bit j % 8 in byte j
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit), _mm256_set1_epi8(0x10));
}
#endif

// Q5_0 / Q5_1: `blocks` blocks of 32 from src; q = the 5-bit value (- 16 for Q5_0).
template <bool with_min>
void decode_q5(const uint8_t* src, int blocks, Decoded& out) {
    constexpr size_t stride = with_min ? sizeof(BlockQ5_1) : sizeof(BlockQ5_0);
    out.len = 32, out.subs = blocks;
    for (int b = 0; b < blocks; ++b) {
        const uint8_t* blk = src + b * stride;
        out.scale[b] = half(blk);
        out.offset[b] = with_min ? half(blk + 2) : 0.0f;
        const uint8_t* qh_at = blk + (with_min ? 4 : 2);
        uint32_t qh;
        std::memcpy(&qh, qh_at, 4);
        const uint8_t* qs = qh_at + 4;
        int8_t* q = out.q + 32 * b;
        constexpr int bias = with_min ? 0 : 16;
#ifdef WINNOW_AVX2
        const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
        const __m128i lo = _mm_and_si128(packed, _mm_set1_epi8(0x0f)), hi = _mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0x0f));
        const __m256i v = _mm256_sub_epi8(_mm256_or_si256(_mm256_set_m128i(hi, lo), fifth_bits(qh)), _mm256_set1_epi8(bias));
        _mm256_store_si256(reinterpret_cast<__m256i*>(q), v);
        continue;
#endif
        for (int j = 0; j < 16; ++j) {
            q[j] = static_cast<int8_t>(((qs[j] & 0x0f) | (((qh >> j) & 1) << 4)) - bias);
            q[j + 16] = static_cast<int8_t>(((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - bias);
        }
    }
}

// The 6-bit scale and min of sub-block j of a Q4_K / Q5_K block (io/quant_read_only.cpp has the layout).
void scale_min_k4(int j, const uint8_t* s, int& sc, int& m) {
    if (j < 4) {
        sc = s[j] & 63;
        m = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// Q4_K / Q5_K: w = (d * sc) * q - dmin * m per sub-block of 32.
template <bool five>
void decode_q45_k(const uint8_t* blk, Decoded& out) {
    out.len = 32, out.subs = 8;
    const float d = half(blk), dmin = half(blk + 2);
    const uint8_t* scales = blk + 4;
    const uint8_t* qh = blk + 16;
    const uint8_t* qs = blk + (five ? 48 : 16);
    for (int j = 0; j < 8; ++j) {
        int sc, m;
        scale_min_k4(j, scales, sc, m);
        out.scale[j] = d * sc;
        out.offset[j] = -(dmin * m);
    }
    for (int pair = 0; pair < 4; ++pair) {
        int8_t* q = out.q + 64 * pair;
        const uint8_t* p = qs + 32 * pair;
        for (int l = 0; l < 32; ++l) {
            q[l] = static_cast<int8_t>(p[l] & 0x0f);
            q[l + 32] = static_cast<int8_t>(p[l] >> 4);
        }
        if constexpr (five)
            for (int l = 0; l < 32; ++l) {
                q[l] = static_cast<int8_t>(q[l] | (((qh[l] >> (2 * pair)) & 1) << 4));
                q[l + 32] = static_cast<int8_t>(q[l + 32] | (((qh[l] >> (2 * pair + 1)) & 1) << 4));
            }
    }
}

// Q6_K: w = (d * sc) * (q - 32) per sub-block of 16.
void decode_q6_k(const uint8_t* blk, Decoded& out) {
    out.len = 16, out.subs = 16;
    const float d = half(blk + 208);
    const auto* sc = reinterpret_cast<const int8_t*>(blk + 192);
    for (int j = 0; j < 16; ++j) out.scale[j] = d * sc[j], out.offset[j] = 0.0f;
    for (int h = 0; h < 2; ++h) {
        const uint8_t* ql = blk + 64 * h;
        const uint8_t* qh = blk + 128 + 32 * h;
        int8_t* q = out.q + 128 * h;
        for (int l = 0; l < 32; ++l) {
            q[l] = static_cast<int8_t>(((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32);
            q[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32);
            q[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            q[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
}

// sum over the decoded sub-blocks of scale * (sum q x) + offset * (sum x); xsums[k]: the sum of x over the k-th 32
// weights (only read where an offset is not 0, so Q6_K and Q5_0 need none).
float decoded_dot(const Decoded& dec, const float* x, const float* xsums) {
    float tail = 0.0f;
#ifdef WINNOW_AVX2
    __m256 acc = _mm256_setzero_ps();
    for (int s = 0; s < dec.subs; ++s) {
        const int8_t* q = dec.q + s * dec.len;
        const float* xs = x + s * dec.len;
        __m256 part = _mm256_setzero_ps();
        for (int j = 0; j < dec.len; j += 8) {
            const __m256 qf = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + j))));
            part = _mm256_fmadd_ps(qf, _mm256_loadu_ps(xs + j), part);
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dec.scale[s]), part, acc);
    }
    float sum = hsum(acc);
#else
    float sum = 0.0f;
    for (int s = 0; s < dec.subs; ++s) {
        float part = 0.0f;
        for (int j = 0; j < dec.len; ++j) part += static_cast<float>(dec.q[s * dec.len + j]) * x[s * dec.len + j];
        sum += dec.scale[s] * part;
    }
#endif
    for (int s = 0; s < dec.subs; ++s)
        if (dec.offset[s] != 0.0f) tail += dec.offset[s] * xsums[s]; // offsets come with 32-weight sub-blocks only
    return sum + tail;
}

} // namespace

bool read_only_needs_block_sums(GgmlType type) { return type == GgmlType::Q5_1 || type == GgmlType::Q4_K || type == GgmlType::Q5_K; }

float read_only_row_dot(GgmlType type, const void* row, const float* x, const float* block_sums, size_t n) {
    const auto* base = static_cast<const uint8_t*>(row);
    Decoded dec;
    float s = 0.0f;
    if (type == GgmlType::Q5_0 || type == GgmlType::Q5_1) {
        const bool with_min = type == GgmlType::Q5_1;
        const size_t stride = with_min ? sizeof(BlockQ5_1) : sizeof(BlockQ5_0), blocks = n / kQuantBlock;
        for (size_t b = 0; b < blocks; b += 8) {
            const int count = static_cast<int>(std::min<size_t>(8, blocks - b));
            if (with_min) decode_q5<true>(base + b * stride, count, dec);
            else decode_q5<false>(base + b * stride, count, dec);
            s += decoded_dot(dec, x + b * kQuantBlock, block_sums ? block_sums + b : nullptr);
        }
        return s;
    }
    const size_t stride = type == GgmlType::Q4_K ? sizeof(BlockQ4_K) : type == GgmlType::Q5_K ? sizeof(BlockQ5_K) : sizeof(BlockQ6_K);
    for (size_t b = 0; b < n / kQuantBlockK; ++b) {
        const uint8_t* blk = base + b * stride;
        if (type == GgmlType::Q4_K) decode_q45_k<false>(blk, dec);
        else if (type == GgmlType::Q5_K) decode_q45_k<true>(blk, dec);
        else decode_q6_k(blk, dec);
        s += decoded_dot(dec, x + b * kQuantBlockK, block_sums ? block_sums + b * (kQuantBlockK / kQuantBlock) : nullptr);
    }
    return s;
}

} // namespace winnow::cpu
