// The one-token q8 product of the K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) and IQ4_XS against Q8_K activations, for AVX2 (+ FMA, F16C):
// compiled with -mavx2 -mfma -mf16c -mno-avx512f whatever the build's -march, chosen at run time by gemm_q8.cpp.
//
// Per super-block of 256 weights, all the integer work stays in integers: 32 quants (0..63) times 32 activation
// quants (-127..127) by maddubs into 16-bit pair sums (at most 63 · 127 · 2 = 16002: no saturation), then madd with
// the sub-block's scale into 32-bit lanes, accumulated over the super-block; then scaled by d · dx once per
// super-block, the lanes converted to fp32 lanes that add across super-blocks (Q6_K's offset taken out of them first,
// in integers). The offsets (Q2_K / Q4_K / Q5_K mins, Q6_K's stored q = weight + 32, Q3_K's q + 4) need only the
// activation's sums per 16 (Q8_K's bsums): one or two 8-lane madds per super-block. vec_dot_q8_preset.cpp is the plain version of the same sums.
#include <immintrin.h>

#include <cstring>

#include "backend/cpu/gemm_q8_operands.h"
#include "io/quant.h"

namespace winnow::cpu {
namespace {

constexpr size_t kQ8KBytes = 292; // float d, int8 qs[256], int16 bsums[16]

inline float hsum8(__m256 v) {
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

inline int hsum4_epi32(__m128i v) {
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x4e));
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0xb1));
    return _mm_cvtsi128_si32(v);
}

inline float half(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

// Super-block i of the Q8_K activation (292 bytes each): its bytes, its scale and its 256 quants.
struct Q8KBlock {
    const uint8_t* bytes;
    float d;
    const int8_t* qs;
};
inline Q8KBlock q8k_block(const uint8_t* xk, int i) {
    Q8KBlock b{xk + static_cast<size_t>(i) * kQ8KBytes, 0.0f, nullptr};
    std::memcpy(&b.d, b.bytes, 4);
    b.qs = reinterpret_cast<const int8_t*>(b.bytes + 4);
    return b;
}

inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m256i low4(__m256i v) { return _mm256_and_si256(v, _mm256_set1_epi8(0x0f)); }
inline __m256i high4(__m256i v) { return _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0f)); }
// bits [k, k + width) of each byte, moved to bits [to, to + width)
inline __m256i byte_bits(__m256i v, int k, int width, int to) {
    return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(v, k), _mm256_set1_epi8(static_cast<char>((1 << width) - 1))), to);
}

// sum of scale · (pair sums of q · x) as 8 int32 lanes; q unsigned (0..63), x signed
inline __m256i scaled_dot(__m256i q, __m256i x, __m256i scale16) { return _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), scale16); }

// The 8 six-bit scales and mins of a Q4_K / Q5_K super-block (io/quant.h's k_scale_min for j = 0..7), unpacked from
// its 12 bytes four at a time: sub-blocks 0-3 are the low 6 bits of bytes 0-3 (scales) and 4-7 (mins); sub-blocks
// 4-7 take their low 4 bits from the nibbles of bytes 8-11 and their top 2 bits from the top bits of bytes 0-7.
inline void k_scales_mins(const uint8_t* s, uint8_t sc[8], uint8_t m[8]) {
    uint32_t a, b, c;
    std::memcpy(&a, s, 4);
    std::memcpy(&b, s + 4, 4);
    std::memcpy(&c, s + 8, 4);
    const uint32_t sc_lo = a & 0x3f3f3f3fu, m_lo = b & 0x3f3f3f3fu;
    const uint32_t sc_hi = (c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u);
    const uint32_t m_hi = ((c >> 4) & 0x0f0f0f0fu) | ((b >> 2) & 0x30303030u);
    std::memcpy(sc, &sc_lo, 4), std::memcpy(sc + 4, &sc_hi, 4);
    std::memcpy(m, &m_lo, 4), std::memcpy(m + 4, &m_hi, 4);
}

// sum_j w_j bsums_j over the 16 sub-blocks of a Q8_K block at xb: w as 16 int8 (signed) or uint8 values
template <bool Signed>
inline __m128i weighted_bsums(__m128i w8, const uint8_t* xb) {
    const __m128i lo = Signed ? _mm_cvtepi8_epi16(w8) : _mm_cvtepu8_epi16(w8);
    const __m128i hi = Signed ? _mm_cvtepi8_epi16(_mm_srli_si128(w8, 8)) : _mm_cvtepu8_epi16(_mm_srli_si128(w8, 8));
    return _mm_add_epi32(_mm_madd_epi16(lo, _mm_loadu_si128(reinterpret_cast<const __m128i*>(xb + 260))),
                         _mm_madd_epi16(hi, _mm_loadu_si128(reinterpret_cast<const __m128i*>(xb + 276))));
}

// The shuffle that gives each 128-bit lane of a broadcast of 8 int16 scales the scale of its 16 weights: sub-block 2k
// (int16 k * 2) in the low lane, 2k + 1 in the high lane, repeated over the lane's 8 int16 slots.
inline __m256i pair_scale_pick(int k) {
    const char lo = static_cast<char>(4 * k), hi = static_cast<char>(4 * k + 2);
    return _mm256_setr_epi8(lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1, hi, hi + 1, hi, hi + 1,
                            hi, hi + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1);
}

template <bool Five>
float q45k_row(const uint8_t* row, const uint8_t* xk, int n_super) {
    constexpr size_t stride = Five ? 176 : 144;
    __m256 acc = _mm256_setzero_ps();
    float offsets = 0.0f;
    for (int i = 0; i < n_super; ++i) {
        const uint8_t* blk = row + i * stride;
        const Q8KBlock x = q8k_block(xk, i);
        uint8_t sc[8], m[8];
        k_scales_mins(blk + 4, sc, m);
        // sum_j m_j (sum of the 32 activation quants of sub-block j): bsums in pairs, then 8 products
        const __m128i bsums = _mm_hadd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x.bytes + 260)),
                                             _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.bytes + 276)));
        uint64_t m8;
        std::memcpy(&m8, m, 8);
        const int mins = hsum4_epi32(_mm_madd_epi16(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(m8))), bsums));
        offsets += (half(blk + 2) * x.d) * static_cast<float>(mins);

        const uint8_t* qs = blk + (Five ? 48 : 16);
        const __m256i qh = Five ? load32(blk + 16) : _mm256_setzero_si256();
        __m256i sum = _mm256_setzero_si256();
        for (int pair = 0; pair < 4; ++pair) { // sub-blocks 2 pair and 2 pair + 1: low and high nibbles of 32 bytes
            const __m256i packed = load32(qs + 32 * pair);
            __m256i q0 = low4(packed), q1 = high4(packed);
            if constexpr (Five) {
                q0 = _mm256_or_si256(q0, byte_bits(qh, 2 * pair, 1, 4));
                q1 = _mm256_or_si256(q1, byte_bits(qh, 2 * pair + 1, 1, 4));
            }
            sum = _mm256_add_epi32(sum, scaled_dot(q0, load32(x.qs + 64 * pair), _mm256_set1_epi16(sc[2 * pair])));
            sum = _mm256_add_epi32(sum, scaled_dot(q1, load32(x.qs + 64 * pair + 32), _mm256_set1_epi16(sc[2 * pair + 1])));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half(blk) * x.d), _mm256_cvtepi32_ps(sum), acc);
    }
    return hsum8(acc) - offsets;
}

float q6k_row(const uint8_t* row, const uint8_t* xk, int n_super) {
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n_super; ++i) {
        const uint8_t* blk = row + i * 210;
        const Q8KBlock x = q8k_block(xk, i);
        const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192));
        const float d = half(blk + 208) * x.d;
        // the stored q are the weights + 32: sum_j sc_j (sum q x)_j - 32 sum_j sc_j bsums_j, exactly in integers
        const __m128i bias = weighted_bsums<true>(sc8, x.bytes);
        __m256i sum = _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) { // each half: weights l, l + 32, l + 64, l + 96 (l = 0..31) from ql, ql + 32 and qh
            const __m256i a = load32(blk + 64 * h), c = load32(blk + 64 * h + 32), qh = load32(blk + 128 + 32 * h);
            // bit pair 2k of each qh byte, moved to bits 4-5
            const __m256i top = _mm256_set1_epi8(0x30);
            const __m256i q[4] = {_mm256_or_si256(low4(a), _mm256_and_si256(_mm256_slli_epi16(qh, 4), top)),
                                  _mm256_or_si256(low4(c), _mm256_and_si256(_mm256_slli_epi16(qh, 2), top)),
                                  _mm256_or_si256(high4(a), _mm256_and_si256(qh, top)),
                                  _mm256_or_si256(high4(c), _mm256_and_si256(_mm256_srli_epi16(qh, 2), top))};
            // the half's 8 scales as int16 in both 128-bit lanes; pair k takes scale 2k into the low lane, 2k + 1 into the high
            const __m256i scales = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(h == 0 ? sc8 : _mm_srli_si128(sc8, 8)));
            for (int k = 0; k < 4; ++k) { // 32 weights = sub-blocks 8h + 2k (low 16 bytes) and 8h + 2k + 1 (high 16)
                sum = _mm256_add_epi32(sum, scaled_dot(q[k], load32(x.qs + 128 * h + 32 * k), _mm256_shuffle_epi8(scales, pair_scale_pick(k))));
            }
        }
        // 32 · bias taken from the low four lanes in integers, exactly; the lanes then scaled by d in fp32 lanes
        const __m256i lanes = _mm256_sub_epi32(sum, _mm256_zextsi128_si256(_mm_slli_epi32(bias, 5)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), acc);
    }
    return hsum8(acc);
}


// The 16 Q3_K scales minus 32 (io/quant.h's q3_k_scale - 32), unpacked four at a time: sub-blocks 0-7 take their low
// 4 bits from the low nibbles of bytes 0-7, 8-15 from the high nibbles; all take their top 2 bits from bytes 8-11, bit
// pair j / 4 of byte 8 + j % 4.
inline __m128i q3k_scales(const uint8_t* s) {
    uint32_t a, b, c;
    std::memcpy(&a, s, 4);
    std::memcpy(&b, s + 4, 4);
    std::memcpy(&c, s + 8, 4);
    const uint32_t w0 = (a & 0x0f0f0f0fu) | ((c & 0x03030303u) << 4), w1 = (b & 0x0f0f0f0fu) | (((c >> 2) & 0x03030303u) << 4);
    const uint32_t w2 = ((a >> 4) & 0x0f0f0f0fu) | (((c >> 4) & 0x03030303u) << 4), w3 = ((b >> 4) & 0x0f0f0f0fu) | (((c >> 6) & 0x03030303u) << 4);
    return _mm_sub_epi8(_mm_setr_epi32(static_cast<int>(w0), static_cast<int>(w1), static_cast<int>(w2), static_cast<int>(w3)), _mm_set1_epi8(32));
}

// Q2_K / Q3_K: per half of 128 weights, 32 bytes of qs hold bit pairs 2j of weights l + 32 j (l = 0..31); each 32 are
// sub-blocks 8h + 2j (low 16 bytes) and 8h + 2j + 1 (high 16). Q3_K enters unsigned as q + 4 (0..7, the third bit from
// hmask), and 4 sum_j s_j bsums_j is taken out in integers, as Q6_K's 32.
template <bool Three>
float q23k_row(const uint8_t* row, const uint8_t* xk, int n_super) {
    constexpr size_t stride = Three ? 110 : 84;
    __m256 acc = _mm256_setzero_ps();
    float offsets = 0.0f;
    for (int i = 0; i < n_super; ++i) {
        const uint8_t* blk = row + i * stride;
        const Q8KBlock x = q8k_block(xk, i);
        __m128i sc8; // the 16 sub-block scales as bytes: Q3_K's signed s - 32, Q2_K's low nibbles
        __m128i bias = _mm_setzero_si128();
        if constexpr (Three) {
            sc8 = q3k_scales(blk + 96);
            bias = _mm_slli_epi32(weighted_bsums<true>(sc8, x.bytes), 2);
        } else {
            const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk));
            sc8 = _mm_and_si128(raw, _mm_set1_epi8(0x0f));
            const __m128i mins = _mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0f));
            offsets += (half(blk + 82) * x.d) * static_cast<float>(hsum4_epi32(weighted_bsums<false>(mins, x.bytes)));
        }
        const __m256i hmask = Three ? load32(blk) : _mm256_setzero_si256();
        __m256i sum = _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) {
            const __m256i qs = load32(blk + (Three ? 32 : 16) + 32 * h);
            const __m128i half_scales = h == 0 ? sc8 : _mm_srli_si128(sc8, 8);
            const __m256i scales = _mm256_broadcastsi128_si256(Three ? _mm_cvtepi8_epi16(half_scales) : _mm_cvtepu8_epi16(half_scales));
            for (int j = 0; j < 4; ++j) {
                __m256i q = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * j), _mm256_set1_epi8(3));
                if constexpr (Three) q = _mm256_or_si256(q, byte_bits(hmask, 4 * h + j, 1, 2));
                sum = _mm256_add_epi32(sum, scaled_dot(q, load32(x.qs + 128 * h + 32 * j), _mm256_shuffle_epi8(scales, pair_scale_pick(j))));
            }
        }
        const __m256i lanes = _mm256_sub_epi32(sum, _mm256_zextsi128_si256(bias));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half(blk + (Three ? 108 : 80)) * x.d), _mm256_cvtepi32_ps(lanes), acc);
    }
    return hsum8(acc) - offsets;
}

// IQ4_XS: per sub-block of 32, the nibbles become their signed grid values (-127..113) by one byte shuffle, then meet
// the activation quants as signed bytes (|w| and x with w's sign: at most 127 * 127 * 2 per pair, no saturation), and
// madd with the sub-block's scale s - 32 (-32..31) into 32-bit lanes, exact.
float iq4xs_row(const uint8_t* row, const uint8_t* xk, int n_super) {
    const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues)));
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n_super; ++i) {
        const uint8_t* blk = row + i * sizeof(BlockIQ4_XS);
        const Q8KBlock x = q8k_block(xk, i);
        uint16_t scales_h;
        std::memcpy(&scales_h, blk + 2, 2);
        __m256i sum = _mm256_setzero_si256();
        for (int j = 0; j < 8; ++j) {
            const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 8 + 16 * j));
            const __m256i nibbles = low4(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed));
            const __m256i w = _mm256_shuffle_epi8(table, nibbles), xq = load32(x.qs + 32 * j);
            const __m256i scale = _mm256_set1_epi16(static_cast<short>(iq4_xs_scale(j, scales_h, blk + 4) - 32));
            sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(xq, w)), scale));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half(blk) * x.d), _mm256_cvtepi32_ps(sum), acc);
    }
    return hsum8(acc);
}

} // namespace

void gemv_q8k_rows_avx2(const Q8KRowOperands& p, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* row = p.w + r * p.row_bytes;
        float y;
        switch (p.kind) {
        case Q8KWeightKind::q2_k: y = q23k_row<false>(row, p.xk, p.n_super); break;
        case Q8KWeightKind::q3_k: y = q23k_row<true>(row, p.xk, p.n_super); break;
        case Q8KWeightKind::q4_k: y = q45k_row<false>(row, p.xk, p.n_super); break;
        case Q8KWeightKind::q5_k: y = q45k_row<true>(row, p.xk, p.n_super); break;
        case Q8KWeightKind::iq4_xs: y = iq4xs_row(row, p.xk, p.n_super); break;
        default: y = q6k_row(row, p.xk, p.n_super); break;
        }
        p.y[r] = y + (p.bias ? p.bias[r] : 0.0f);
    }
}

} // namespace winnow::cpu
