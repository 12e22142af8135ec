// Encoders of the preset GGUF weight types (Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS): the inverses of io/quant_preset.cpp's
// decoders, in ggml's block layouts (ggml-common.h).
//  - Q5_0 / Q5_1 round as ggml's reference quantizer does: one scale per 32 weights from the block's extremes.
//  - The K-quants take the approach of ggml's reference K-quantizer (the k-quants design of llama.cpp PR 1684): a
//    sub-block's scale (and, for Q4_K / Q5_K, its offset) is the best of a small grid of candidate scales, each
//    refined by weighted least squares on the integers it rounds to; the sub-block scales are then quantized to
//    6 bits (Q4_K, Q5_K) or 8 bits (Q6_K) against one fp16 scale per super-block, and every weight is rounded again
//    against the quantized scale it will be decoded with. The code is ours. Its candidates, weights and comparisons
//    are ggml's for Q4_K and Q6_K, so that most blocks come out byte-identical to llama-quantize's (no imatrix); for
//    Q5_K it searches the same grid as Q4_K (nmax - 1 ... nmax + 1), a little wider than ggml's, which lowered the
//    error 1.5% on tiny-llama-k. tests/unit/test_quant.cpp (against ggml's C reference on one input) and
//    tests/cli/quantize_vs_llama_cpp.py (against llama-quantize on whole models) hold the error to llama.cpp's.
// Rounding is to nearest, ties to even (std::nearbyint in the default mode), on fp32 values.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "io/quant.h"

namespace winnow {

namespace {

// Nearest integer, ties to even. Values beyond +-1e9 (and NaN) do not reach the cast, where they would be undefined:
// they arise only from scales that overflowed fp16 (weights beyond ~1e6), and every caller clamps far inside that.
int round_int(float v) {
    if (v != v) return 0;
    return static_cast<int>(std::nearbyint(std::clamp(v, -1e9f, 1e9f)));
}
int clamp_int(int v, int lo, int hi) { return std::min(hi, std::max(lo, v)); }

// Stores v as fp16 at p and returns the value a decoder will read back.
float put_half(uint8_t* p, float v) {
    const uint16_t h = fp32_to_fp16(v);
    std::memcpy(p, &h, 2);
    return fp16_to_fp32(h);
}

// Q5_0: x = d * (q - 16), the weight of largest magnitude at q = 0. Q5_1: x = d * q + m, m the block's minimum.
// q's low 4 bits are nibbles as in Q4_0 (weight j < 16 low, j + 16 high), bit j of the 32-bit qh its fifth bit.
template <bool with_min>
void encode_q5(const float* src, uint8_t* dst, size_t n) {
    constexpr size_t stride = with_min ? sizeof(BlockQ5_1) : sizeof(BlockQ5_0);
    for (size_t i = 0; i < n / kQuantBlock; ++i) {
        const float* x = src + i * kQuantBlock;
        uint8_t* b = dst + i * stride;
        float d = 0.0f, lo = 0.0f;
        if constexpr (with_min) {
            float hi = x[0];
            lo = x[0];
            for (int j = 1; j < 32; ++j) { lo = std::min(lo, x[j]); hi = std::max(hi, x[j]); }
            d = (hi - lo) / 31.0f;
            put_half(b + 2, lo);
        } else {
            float amax = 0.0f, max = 0.0f;
            for (int j = 0; j < 32; ++j)
                if (amax < std::fabs(x[j])) { amax = std::fabs(x[j]); max = x[j]; }
            d = max / -16.0f;
        }
        put_half(b, d);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint32_t qh = 0;
        uint8_t* qs = b + (with_min ? 8 : 6);
        std::memset(qs, 0, 16);
        for (int j = 0; j < 32; ++j) {
            // truncation of a value >= 0.5: rounds half up, as ggml's reference does (NaN, from a range beyond fp32's, is 0)
            const float level = with_min ? (x[j] - lo) * id + 0.5f : x[j] * id + 16.5f;
            const int q = level >= 0.0f ? static_cast<int>(std::min(level, 31.0f)) : 0;
            qs[j % 16] |= static_cast<uint8_t>((q & 15) << (j < 16 ? 0 : 4));
            qh |= static_cast<uint32_t>(q >> 4) << j;
        }
        std::memcpy(b + (with_min ? 4 : 2), &qh, 4);
    }
}

// The scale a and offset b <= 0 that minimise the weighted error of a q + b against x over one sub-block of n, q =
// round((x - b) / a) clamped to [0, nmax]; the error is sum w (a q + b - x)^2, or sum w |a q + b - x| (absolute). The
// first candidate is the grid of nmax steps from min(x, 0) to max x; then grids of nmax + first + step k / 10 steps
// (k = 0 .. steps) from the best offset so far to max x, each refined by the weighted least-squares (a, b) for the
// integers it gives (b pinned to 0 where the fit wants b > 0) and judged by the error of those integers. Anchoring each
// grid at the best offset found so far, not at min(x, 0), is what ggml's reference does; it lowers the error by about
// 1% on Gaussian weights. Q4_K / Q5_K search 32 weights, first -1, 20 steps, squared; Q2_K 16 weights, first -0.5, 15
// steps, absolute (ggml's settings for each). q (optional) receives the chosen integers.
struct AffineFit { float scale; float offset; };
struct AffineGrid { int n; int nmax; float first; int steps; bool absolute; };

AffineFit fit_affine(const float* x, const float* w, const AffineGrid& g, uint8_t* q_out = nullptr) {
    constexpr int kMax = 32;
    const int n = g.n, nmax = g.nmax;
    float lo = std::min(0.0f, *std::min_element(x, x + n));
    const float hi = *std::max_element(x, x + n);
    if (!(hi > lo)) {
        if (q_out) std::fill(q_out, q_out + n, uint8_t{0});
        return {0.0f, lo};
    }
    auto error_of = [&](float diff, float weight) { return weight * (g.absolute ? std::fabs(diff) : diff * diff); };
    // the first candidate: the grid of nmax steps from lo to hi, as it rounds
    const float iscale0 = nmax / (hi - lo);
    AffineFit best{1.0f / iscale0, lo};
    float best_error = 0.0f, sw = 0.0f, sx = 0.0f; // sw, sx: the same for every candidate
    uint8_t best_q[kMax];
    for (int i = 0; i < n; ++i) {
        const int q = clamp_int(round_int(iscale0 * (x[i] - lo)), 0, nmax);
        best_q[i] = static_cast<uint8_t>(q);
        best_error += error_of(best.scale * q + lo - x[i], w[i]);
        sw += w[i];
        sx += w[i] * x[i];
    }
    for (int step = 0; step <= g.steps; ++step) {
        lo = best.offset;
        const float iscale = (g.first + 0.1f * step + nmax) / (hi - lo);
        float sq = 0.0f, sqq = 0.0f, sqx = 0.0f, qs[kMax];
        for (int i = 0; i < n; ++i) {
            const float q = static_cast<float>(clamp_int(round_int(iscale * (x[i] - lo)), 0, nmax));
            qs[i] = q;
            sq += w[i] * q;
            sqq += w[i] * q * q;
            sqx += w[i] * q * x[i];
        }
        const float det = sw * sqq - sq * sq;
        if (!(det > 0.0f)) continue;
        float a = (sw * sqx - sq * sx) / det, b = (sqq * sx - sq * sqx) / det;
        if (b > 0.0f) { b = 0.0f; a = sqx / sqq; }
        float e = 0.0f; // the error of the candidate's own integers under the fitted scale and offset
        for (int i = 0; i < n; ++i) e += error_of(a * qs[i] + b - x[i], w[i]);
        if (e < best_error) {
            best = {a, b};
            best_error = e;
            for (int i = 0; i < n; ++i) best_q[i] = static_cast<uint8_t>(qs[i]);
        }
    }
    if (q_out) std::copy(best_q, best_q + n, q_out);
    return best;
}

// The inverse of k_scale_min (io/quant.h): packs sub-block j's 6-bit scale and min into the 12 scale bytes.
void put_k_scale_min(int j, int sc, int m, uint8_t* s) {
    if (j < 4) {
        s[j] = static_cast<uint8_t>((s[j] & 0xc0) | sc);
        s[j + 4] = static_cast<uint8_t>((s[j + 4] & 0xc0) | m);
    } else {
        s[j + 4] = static_cast<uint8_t>((sc & 0x0f) | ((m & 0x0f) << 4));
        s[j - 4] = static_cast<uint8_t>(s[j - 4] | ((sc >> 4) << 6));
        s[j] = static_cast<uint8_t>(s[j] | ((m >> 4) << 6));
    }
}

// Q4_K / Q5_K: x = d * sc_j * q - dmin * m_j per sub-block j of 32, sc_j and m_j 6-bit. A sub-block's weights for the
// fit are av + |x| (av the sub-block's root mean square), which favours the larger weights as ggml's reference does.
template <bool five>
void encode_q45_k(const float* src, uint8_t* dst, size_t n) {
    constexpr int nmax = five ? 31 : 15;
    constexpr size_t stride = five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
    for (size_t i = 0; i < n / kQuantBlockK; ++i) {
        const float* x = src + i * kQuantBlockK;
        uint8_t* b = dst + i * stride;
        float scale[8], min[8], w[32];
        for (int j = 0; j < 8; ++j) {
            const float* xs = x + 32 * j;
            float sum2 = 0.0f;
            for (int l = 0; l < 32; ++l) sum2 += xs[l] * xs[l];
            const float av = std::sqrt(sum2 / 32.0f);
            for (int l = 0; l < 32; ++l) w[l] = av + std::fabs(xs[l]);
            const AffineFit fit = fit_affine(xs, w, {32, nmax, -1.0f, 20, false});
            scale[j] = fit.scale;
            min[j] = -fit.offset;
        }
        const float max_scale = *std::max_element(scale, scale + 8), max_min = *std::max_element(min, min + 8);
        const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
        const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
        const float d = put_half(b, max_scale / 63.0f), dmin = put_half(b + 2, max_min / 63.0f);
        uint8_t* scales = b + 4;
        std::memset(scales, 0, 12);
        int sc[8], m[8];
        for (int j = 0; j < 8; ++j) {
            sc[j] = clamp_int(round_int(inv_scale * scale[j]), 0, 63);
            m[j] = clamp_int(round_int(inv_min * min[j]), 0, 63);
            put_k_scale_min(j, sc[j], m[j], scales);
        }
        uint8_t* qh = five ? b + 16 : nullptr;
        uint8_t* qs = b + (five ? 48 : 16);
        if constexpr (five) std::memset(qh, 0, 32);
        std::memset(qs, 0, 128);
        for (int j = 0; j < 8; ++j) {
            const float dl = d * sc[j], dm = dmin * m[j];
            const int pair = j / 2, high = j % 2;
            for (int l = 0; l < 32; ++l) {
                const int q = dl > 0.0f ? clamp_int(round_int((x[32 * j + l] + dm) / dl), 0, nmax) : 0;
                qs[32 * pair + l] |= static_cast<uint8_t>((q & 15) << (4 * high));
                if constexpr (five) qh[l] |= static_cast<uint8_t>((q >> 4) << j);
            }
        }
    }
}

// The scale a that minimises sum x^2 (a q - x)^2 over a sub-block of 16, q = round(x / a) in [-32, 31]. Candidates:
// the weight of largest magnitude mapped to -(32 + k / 10), k = -9..9 (the grid's asymmetric end), each refined by
// least squares for the integers it gives.
float fit_symmetric(const float* x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; ++i)
        if (amax < std::fabs(x[i])) { amax = std::fabs(x[i]); max = x[i]; }
    if (!(amax > 1e-30f)) return 0.0f;
    // Candidate k = 0 first, then the others; a later candidate must be strictly better. The comparison is that of
    // ggml's reference (sumqx^2 > best * sumqq, best = scale * sumqx), in double where fp32 would overflow.
    float best = 0.0f, best_sumqx = 0.0f;
    bool have_best = false;
    for (int k : {0, -9, -8, -7, -6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
        const float iscale = -(32.0f + 0.1f * k) / max;
        float sumqx = 0.0f, sumqq = 0.0f;
        for (int i = 0; i < n; ++i) {
            const float q = static_cast<float>(clamp_int(round_int(iscale * x[i]), -32, 31));
            const float w = x[i] * x[i];
            sumqx += w * x[i] * q;
            sumqq += w * q * q;
        }
        // the error at the least-squares scale is sum w x^2 - sumqx^2 / sumqq: the larger sumqx^2 / sumqq the better
        if (!have_best) {
            best = sumqq > 0.0f ? sumqx / sumqq : 0.0f;
            best_sumqx = sumqx;
            have_best = true;
            continue;
        }
        if (!(sumqq > 0.0f)) continue;
        const float lhs = sumqx * sumqx, rhs = best * best_sumqx * sumqq;
        const bool better = std::isfinite(lhs) && std::isfinite(rhs)
                                ? lhs > rhs
                                : static_cast<double>(sumqx) * sumqx > static_cast<double>(best) * best_sumqx * sumqq;
        if (better) {
            best = sumqx / sumqq;
            best_sumqx = sumqx;
        }
    }
    return best;
}

// Q6_K: x = d * sc_j * (q - 32) per sub-block j of 16, sc_j int8, q 6 bits (layout: io/quant_preset.cpp).
void encode_q6_k(const float* src, uint8_t* dst, size_t n) {
    for (size_t i = 0; i < n / kQuantBlockK; ++i) {
        const float* x = src + i * kQuantBlockK;
        uint8_t* b = dst + i * sizeof(BlockQ6_K);
        uint8_t* ql = b;
        uint8_t* qh = b + 128;
        auto* scales = reinterpret_cast<int8_t*>(b + 192);
        std::memset(b, 0, sizeof(BlockQ6_K));
        float scale[16], amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 16; ++j) {
            scale[j] = fit_symmetric(x + 16 * j, 16);
            if (amax < std::fabs(scale[j])) { amax = std::fabs(scale[j]); max = scale[j]; }
        }
        if (!(amax > 1e-30f)) { // all zero: d = 0, every q at 32 (the decoded zero)
            std::fill(qh, qh + 64, 0xaa); // the high bits of 32 (2) in every 2-bit field; ql's low bits are 0
            put_half(b + 208, 0.0f);
            continue;
        }
        // the sub-block scale of largest magnitude maps to -128, as the q grid's asymmetric end
        const float iscale = -128.0f / max;
        const float d = put_half(b + 208, 1.0f / iscale);
        for (int j = 0; j < 16; ++j) scales[j] = static_cast<int8_t>(clamp_int(round_int(iscale * scale[j]), -128, 127));
        for (int e = 0; e < 256; ++e) {
            const float dl = d * scales[e / 16];
            const int q = (dl != 0.0f ? clamp_int(round_int(x[e] / dl), -32, 31) : 0) + 32;
            const int h = e / 128, r = e % 128, k = r / 32, l = r % 32;
            ql[64 * h + l + 32 * (k & 1)] |= static_cast<uint8_t>((q & 15) << (k < 2 ? 0 : 4));
            qh[32 * h + l] |= static_cast<uint8_t>((q >> 4) << (2 * k));
        }
    }
}

// Packs the 2-bit fields of a Q2_K / Q3_K super-block: element 128 h + 32 k + l (q 0..3) into bits 2k of qs[32 h + l].
void put_2bit_fields(const uint8_t* q, uint8_t* qs) {
    std::memset(qs, 0, 64);
    for (int e = 0; e < kQuantBlockK; ++e) {
        const int h = e / 128, k = (e % 128) / 32, l = e % 32;
        qs[32 * h + l] |= static_cast<uint8_t>((q[e] & 3) << (2 * k));
    }
}

// Q2_K: x = d * (sc_j & 15) * q - dmin * (sc_j >> 4) per sub-block j of 16, q 2 bits, scale and min 4 bits each. Each
// sub-block is fitted by fit_affine with weights |x| and absolute error (ggml's settings), then the 16 scales and 16
// mins are rounded to 4 bits against the super-block's largest of each, and every weight rounded again against the
// scale and min it will be decoded with. A sub-block whose decoded scale is 0 keeps the fit's integers (they decode to
// -dmin * min either way), as ggml's does, so that the bytes can match.
void encode_q2_k(const float* src, uint8_t* dst, size_t n) {
    for (size_t i = 0; i < n / kQuantBlockK; ++i) {
        const float* x = src + i * kQuantBlockK;
        uint8_t* b = dst + i * sizeof(BlockQ2_K);
        uint8_t q[kQuantBlockK];
        float scale[16], min[16], w[16];
        float max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < 16; ++j) {
            const float* xs = x + 16 * j;
            for (int l = 0; l < 16; ++l) w[l] = std::fabs(xs[l]);
            const AffineFit fit = fit_affine(xs, w, {16, 3, -0.5f, 15, true}, q + 16 * j);
            scale[j] = fit.scale, min[j] = -fit.offset;
            max_scale = std::max(max_scale, scale[j]);
            max_min = std::max(max_min, min[j]);
        }
        uint8_t* sc = b;
        std::memset(sc, 0, 16);
        const float inv_scale = max_scale > 0.0f ? 15.0f / max_scale : 0.0f, inv_min = max_min > 0.0f ? 15.0f / max_min : 0.0f;
        for (int j = 0; j < 16; ++j)
            sc[j] = static_cast<uint8_t>(clamp_int(round_int(inv_scale * scale[j]), 0, 15) | clamp_int(round_int(inv_min * min[j]), 0, 15) << 4);
        const float d = put_half(b + 80, max_scale > 0.0f ? max_scale / 15.0f : 0.0f);
        const float dmin = put_half(b + 82, max_min > 0.0f ? max_min / 15.0f : 0.0f);
        for (int j = 0; j < 16; ++j) {
            const float dl = d * static_cast<float>(sc[j] & 15);
            if (dl == 0.0f) continue;
            const float dm = dmin * static_cast<float>(sc[j] >> 4);
            for (int l = 0; l < 16; ++l) q[16 * j + l] = static_cast<uint8_t>(clamp_int(round_int((x[16 * j + l] + dm) / dl), 0, 3));
        }
        put_2bit_fields(q, b + 16);
    }
}

// The scale a and integers q in [-4, 3] for a sub-block of 16 (Q3_K), weights x^2: q from the grid that maps the
// weight of largest magnitude to -4, then up to 5 passes of coordinate descent, each q moved to its best value given
// the others (accepted where the weighted least-squares fit improves: sumqx^2 / sumqq grows). The approach of ggml's
// reference (make_q3_quants); q_out receives q + 4. All-zero sub-blocks (below 1e-15) give a = 0 and q + 4 = 0.
float fit_q3(const float* x, uint8_t* q_out) {
    constexpr int n = 16, nmax = 4;
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; ++i)
        if (std::fabs(x[i]) > amax) { amax = std::fabs(x[i]); max = x[i]; }
    if (!(amax >= 1e-15f)) {
        std::memset(q_out, 0, n);
        return 0.0f;
    }
    const float iscale = -nmax / max;
    int q[n];
    float sumqx = 0.0f, sumqq = 0.0f;
    for (int i = 0; i < n; ++i) {
        q[i] = clamp_int(round_int(iscale * x[i]), -nmax, nmax - 1);
        const float w = x[i] * x[i];
        sumqx += w * x[i] * q[i];
        sumqq += w * q[i] * q[i];
    }
    for (int pass = 0; pass < 5; ++pass) {
        int changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = x[i] * x[i];
            float sx = sumqx - w * x[i] * q[i]; // the sums without weight i
            if (!(sx > 0.0f)) continue;
            float sq = sumqq - w * q[i] * q[i];
            const int moved = clamp_int(round_int(x[i] * sq / sx), -nmax, nmax - 1);
            if (moved == q[i]) continue;
            sx += w * x[i] * moved;
            sq += w * moved * moved;
            if (sq > 0.0f && sx * sx * sumqq > sumqx * sumqx * sq) {
                q[i] = moved, sumqx = sx, sumqq = sq;
                ++changed;
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; ++i) q_out[i] = static_cast<uint8_t>(q[i] + nmax);
    return sumqq > 0.0f ? sumqx / sumqq : 0.0f;
}

// Q3_K: x = d * (s_j - 32) * (q - 4) per sub-block j of 16, s_j 6 bits (io/quant.h's q3_k_scale packing), q 3 bits: 2
// in qs, the third in hmask. The sub-block scale of largest magnitude maps to -32, as the grid's asymmetric end.
void encode_q3_k(const float* src, uint8_t* dst, size_t n) {
    for (size_t i = 0; i < n / kQuantBlockK; ++i) {
        const float* x = src + i * kQuantBlockK;
        uint8_t* b = dst + i * sizeof(BlockQ3_K);
        uint8_t q[kQuantBlockK]; // q + 4, 0..7
        float scale[16], amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 16; ++j) {
            scale[j] = fit_q3(x + 16 * j, q + 16 * j);
            if (std::fabs(scale[j]) > amax) { amax = std::fabs(scale[j]); max = scale[j]; }
        }
        uint8_t* scales = b + 96;
        std::memset(scales, 0, 12);
        float d = 0.0f;
        if (max != 0.0f) {
            const float iscale = -32.0f / max;
            for (int j = 0; j < 16; ++j) {
                const int s = clamp_int(round_int(iscale * scale[j]), -32, 31) + 32;
                scales[j % 8] |= static_cast<uint8_t>((s & 15) << (j < 8 ? 0 : 4));
                scales[8 + j % 4] |= static_cast<uint8_t>((s >> 4) << (2 * (j / 4)));
            }
            d = put_half(b + 108, 1.0f / iscale);
        } else {
            put_half(b + 108, 0.0f);
        }
        for (int j = 0; j < 16; ++j) {
            const float dl = d * static_cast<float>(q3_k_scale(j, scales) - 32);
            if (dl == 0.0f) continue; // keeps fit_q3's integers, as ggml's does
            for (int l = 0; l < 16; ++l) q[16 * j + l] = static_cast<uint8_t>(clamp_int(round_int(x[16 * j + l] / dl), -4, 3) + 4);
        }
        uint8_t* hmask = b;
        std::memset(hmask, 0, 32);
        uint8_t low[kQuantBlockK];
        for (int e = 0; e < kQuantBlockK; ++e) {
            const int h = e / 128, k = (e % 128) / 32, l = e % 32;
            if (q[e] > 3) hmask[l] |= static_cast<uint8_t>(1 << (4 * h + k)); // the third bit set: q decodes as its low bits
            low[e] = static_cast<uint8_t>(q[e] & 3);
        }
        put_2bit_fields(low, b + 32);
    }
}

// The index of the grid value nearest v (values ascending; the lower one on a tie), as ggml's best_index_int8.
int nearest_grid_index(const int8_t* values, int n, float v) {
    if (v <= values[0]) return 0;
    if (v >= values[n - 1]) return n - 1;
    int lo = 0, hi = n - 1;
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (v < values[mid]) hi = mid;
        else lo = mid;
    }
    return v - values[hi - 1] < values[hi] - v ? hi - 1 : hi;
}

// The scale of 32 weights on IQ4_NL's grid: the best of 15 grids, each mapping the weight of largest magnitude to
// -127 + k (k = -7..7) and then every weight to its nearest grid value, refined by least squares with weights x^2
// (ggml's search, without an importance matrix). 0 for a block of (near) zeros.
float fit_iq4_scale(const float* x) {
    constexpr int kTries = 7;
    const int8_t* values = kIq4nlValues;
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; ++j)
        if (std::fabs(x[j]) > amax) { amax = std::fabs(x[j]); max = x[j]; }
    if (amax < 1e-15f) return 0.0f;
    auto fit = [&](float id, float& sumqx, float& sumqq) {
        sumqx = sumqq = 0.0f;
        for (int j = 0; j < 32; ++j) {
            const float q = values[nearest_grid_index(values, 16, id * x[j])], w = x[j] * x[j];
            sumqx += w * q * x[j];
            sumqq += w * q * q;
        }
    };
    float sumqx, sumqq;
    fit(1.0f / (-max / values[0]), sumqx, sumqq);
    float d = sumqx / sumqq;
    float best = d * sumqx;
    for (int t = -kTries; t <= kTries; ++t) {
        fit((t + values[0]) / max, sumqx, sumqq);
        if (sumqq > 0.0f && sumqx * sumqx > best * sumqq) { d = sumqx / sumqq; best = d * sumqx; }
    }
    return d;
}

// 32 weights' nibbles against the fp32 scale d (as ggml, not its fp16 copy), in Q4_0's order: 16 bytes at qs.
void put_iq4_quants(const float* x, float d, uint8_t* qs) {
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 16; ++j)
        qs[j] = static_cast<uint8_t>(nearest_grid_index(kIq4nlValues, 16, id * x[j]) | nearest_grid_index(kIq4nlValues, 16, id * x[j + 16]) << 4);
}

// IQ4_NL: x = d * kIq4nlValues[q] per block of 32, d the block's fit_iq4_scale.
void encode_iq4_nl(const float* src, uint8_t* dst, size_t n) {
    for (size_t i = 0; i < n / kQuantBlock; ++i) {
        const float* x = src + i * kQuantBlock;
        uint8_t* b = dst + i * sizeof(BlockIQ4_NL);
        const float d = fit_iq4_scale(x);
        put_half(b, d);
        put_iq4_quants(x, d, b + 2);
    }
}

// IQ4_XS: each sub-block of 32 fitted as an IQ4_NL block, then its scale rounded to a 6-bit step (-32..31) of one
// super-block d = -(the scale of largest magnitude) / 32, and its weights rounded again against the step they will be
// decoded with (ggml's quantize_iq4_xs without an importance matrix, in its order of operations).
void encode_iq4_xs(const float* src, uint8_t* dst, size_t n) {
    for (size_t i = 0; i < n / kQuantBlockK; ++i) {
        const float* x = src + i * kQuantBlockK;
        uint8_t* b = dst + i * sizeof(BlockIQ4_XS);
        float scales[8], max_scale = 0.0f, amax_scale = 0.0f;
        for (int j = 0; j < 8; ++j) {
            scales[j] = fit_iq4_scale(x + 32 * j);
            if (std::fabs(scales[j]) > amax_scale) { amax_scale = std::fabs(scales[j]); max_scale = scales[j]; }
        }
        const float d = -max_scale / 32.0f;
        put_half(b, d);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t scales_h = 0;
        uint8_t* scales_l = b + 4;
        std::memset(scales_l, 0, 4);
        for (int j = 0; j < 8; ++j) {
            const int l = clamp_int(round_int(id * scales[j]), -32, 31);
            put_iq4_quants(x + 32 * j, d * static_cast<float>(l), b + 8 + 16 * j);
            const int s = l + 32; // stored 0..63
            scales_l[j / 2] = static_cast<uint8_t>(scales_l[j / 2] | (s & 0x0f) << (4 * (j % 2)));
            scales_h = static_cast<uint16_t>(scales_h | (s >> 4) << (2 * j));
        }
        std::memcpy(b + 2, &scales_h, 2);
    }
}

} // namespace

bool quantize_preset(GgmlType type, const float* src, void* dst, size_t n) {
    auto* d = static_cast<uint8_t*>(dst);
    switch (type) {
    case GgmlType::Q5_0: encode_q5<false>(src, d, n); return true;
    case GgmlType::Q5_1: encode_q5<true>(src, d, n); return true;
    case GgmlType::IQ4_NL: encode_iq4_nl(src, d, n); return true;
    case GgmlType::IQ4_XS: encode_iq4_xs(src, d, n); return true;
    case GgmlType::Q2_K: encode_q2_k(src, d, n); return true;
    case GgmlType::Q3_K: encode_q3_k(src, d, n); return true;
    case GgmlType::Q4_K: encode_q45_k<false>(src, d, n); return true;
    case GgmlType::Q5_K: encode_q45_k<true>(src, d, n); return true;
    case GgmlType::Q6_K: encode_q6_k(src, d, n); return true;
    default: return false;
    }
}

} // namespace winnow
