#include "io/quant.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "winnow/error.h"

namespace winnow {

namespace {
uint32_t bits_of(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
float float_of(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
} // namespace

float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
    const uint32_t exp = (h >> 10) & 0x1f;
    const uint32_t mant = h & 0x3ff;
    if (exp == 0x1f) return float_of(sign | 0x7f800000 | (mant << 13)); // inf / nan
    if (exp != 0) return float_of(sign | ((exp + 112) << 23) | (mant << 13));
    if (mant == 0) return float_of(sign);
    // subnormal half: value = mant * 2^-24, exact in fp32
    float v = static_cast<float>(mant) * 0x1p-24f;
    return sign ? -v : v;
}

uint16_t fp32_to_fp16(float f) {
    const uint32_t x = bits_of(f);
    const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
    const uint32_t abs = x & 0x7fffffff;
    if (abs >= 0x7f800000) return sign | 0x7c00 | (abs > 0x7f800000 ? 0x200 : 0); // inf / quiet nan
    if (abs >= 0x477ff000) return sign | 0x7c00; // rounds to >= 65520: overflow to inf
    if (abs < 0x38800000) {
        // result is a half subnormal (or zero): value / 2^-24 rounded to nearest even
        float scaled = float_of(abs) * 0x1p24f; // exact: multiply by a power of two
        float r = std::nearbyint(scaled);        // default rounding mode is nearest-even
        return sign | static_cast<uint16_t>(r);
    }
    // normal half: drop 13 mantissa bits with round-to-nearest-even
    uint32_t m = abs + 0xfff + ((abs >> 13) & 1);
    return sign | static_cast<uint16_t>((m - (112u << 23)) >> 13);
}

uint16_t fp32_to_bf16(float f) {
    uint32_t u = bits_of(f);
    if ((u & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((u >> 16) | 64); // quiet nan
    return static_cast<uint16_t>((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

void dequantize_row(GgmlType type, const void* src, float* dst, size_t n) {
    switch (type) {
    case GgmlType::F32:
        std::memcpy(dst, src, n * sizeof(float));
        return;
    case GgmlType::F16: {
        auto* s = static_cast<const uint16_t*>(src);
        for (size_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(s[i]);
        return;
    }
    case GgmlType::BF16: {
        auto* s = static_cast<const uint16_t*>(src);
        for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(s[i]);
        return;
    }
    case GgmlType::Q8_0: {
        auto* b = static_cast<const BlockQ8_0*>(src);
        for (size_t i = 0; i < n / kQuantBlock; ++i) {
            const float d = fp16_to_fp32(b[i].d);
            for (int j = 0; j < 32; ++j) dst[i * 32 + j] = b[i].qs[j] * d;
        }
        return;
    }
    case GgmlType::Q4_0: {
        auto* b = static_cast<const BlockQ4_0*>(src);
        for (size_t i = 0; i < n / kQuantBlock; ++i) {
            const float d = fp16_to_fp32(b[i].d);
            for (int j = 0; j < 16; ++j) {
                dst[i * 32 + j] = ((b[i].qs[j] & 0x0f) - 8) * d;
                dst[i * 32 + j + 16] = ((b[i].qs[j] >> 4) - 8) * d;
            }
        }
        return;
    }
    case GgmlType::Q4_1: {
        auto* b = static_cast<const BlockQ4_1*>(src);
        for (size_t i = 0; i < n / kQuantBlock; ++i) {
            const float d = fp16_to_fp32(b[i].d), m = fp16_to_fp32(b[i].m);
            for (int j = 0; j < 16; ++j) {
                dst[i * 32 + j] = (b[i].qs[j] & 0x0f) * d + m;
                dst[i * 32 + j + 16] = (b[i].qs[j] >> 4) * d + m;
            }
        }
        return;
    }
    default:
        if (dequantize_preset(type, src, dst, n)) return;
        throw Error(ErrorKind::unsupported, std::string("cannot decode tensor type ") + ggml_type_name(type));
    }
}

void quantize_row_ref(GgmlType type, const float* src, void* dst, size_t n) {
    switch (type) {
    case GgmlType::F32:
        std::memcpy(dst, src, n * sizeof(float));
        return;
    case GgmlType::F16: {
        auto* d = static_cast<uint16_t*>(dst);
        for (size_t i = 0; i < n; ++i) d[i] = fp32_to_fp16(src[i]);
        return;
    }
    case GgmlType::BF16: {
        auto* d = static_cast<uint16_t*>(dst);
        for (size_t i = 0; i < n; ++i) d[i] = fp32_to_bf16(src[i]);
        return;
    }
    case GgmlType::Q8_0: {
        auto* b = static_cast<BlockQ8_0*>(dst);
        for (size_t i = 0; i < n / kQuantBlock; ++i) {
            const float* x = src + i * 32;
            float amax = 0.0f;
            for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
            const float d = amax / 127.0f;
            const float id = d != 0.0f ? 1.0f / d : 0.0f;
            b[i].d = fp32_to_fp16(d);
            for (int j = 0; j < 32; ++j) b[i].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
        }
        return;
    }
    case GgmlType::Q4_0: {
        auto* b = static_cast<BlockQ4_0*>(dst);
        for (size_t i = 0; i < n / kQuantBlock; ++i) {
            const float* x = src + i * 32;
            // the signed value of largest magnitude maps to -8, so the grid is [-8, 7]
            float amax = 0.0f, max = 0.0f;
            for (int j = 0; j < 32; ++j)
                if (amax < std::fabs(x[j])) { amax = std::fabs(x[j]); max = x[j]; }
            const float d = max / -8.0f;
            const float id = d != 0.0f ? 1.0f / d : 0.0f;
            b[i].d = fp32_to_fp16(d);
            for (int j = 0; j < 16; ++j) {
                const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
                const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 8.5f)));
                b[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
            }
        }
        return;
    }
    case GgmlType::Q4_1: {
        auto* b = static_cast<BlockQ4_1*>(dst);
        for (size_t i = 0; i < n / kQuantBlock; ++i) {
            const float* x = src + i * 32;
            float min = FLT_MAX, max = -FLT_MAX;
            for (int j = 0; j < 32; ++j) { min = std::min(min, x[j]); max = std::max(max, x[j]); }
            const float d = (max - min) / 15.0f;
            const float id = d != 0.0f ? 1.0f / d : 0.0f;
            b[i].d = fp32_to_fp16(d);
            b[i].m = fp32_to_fp16(min);
            // truncation of a value >= 0.5 rounds half up, as ggml's reference does; NaN (a range beyond fp32's) is 0
            const auto level = [&](float v) { const float l = (v - min) * id + 0.5f; return l >= 0.0f ? static_cast<int>(std::min(l, 15.0f)) : 0; };
            for (int j = 0; j < 16; ++j) {
                const int q0 = level(x[j]);
                const int q1 = level(x[j + 16]);
                b[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
            }
        }
        return;
    }
    default:
        if (quantize_preset(type, src, dst, n)) return;
        throw Error(ErrorKind::unsupported, std::string("cannot encode tensor type ") + ggml_type_name(type));
    }
}

} // namespace winnow
