#pragma once
// Pieces the CPU attention kernels share (attention_cpu.cpp's row walk, attention_tiles_cpu.cpp's prefill tiles).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "backend/cpu/kv_elem.h"
#include "backend/cpu/simd.h"
#include "winnow/error.h"

namespace winnow::cpu {

// x[i] = e^(x[i] - m) in place; returns the sum.
inline float exp_shift_sum(float* x, int n, float m) {
    int i = 0;
    float s = 0.0f;
#ifdef WINNOW_AVX2
    const __m256 vm = _mm256_set1_ps(m);
    __m256 acc = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    s = hsum(acc);
#endif
    for (; i < n; ++i) s += (x[i] = std::exp(x[i] - m));
    return s;
}

// Gemma 2's soft cap of scores: x[i] = cap * tanh(x[i] / cap) in place; cap 0: none. (A capped score is bounded, so
// scores stay finite under the cap whatever the keys hold; std::tanh: the cost is small next to the dot products.)
inline void softcap_scores(float* x, int n, float cap) {
    if (cap == 0.0f) return;
    for (int i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

// max(x[0 .. n)), n >= 1 (-inf for -inf scores; a NaN may or may not win, as with std::max_element)
inline float max_of(const float* x, int n) {
    int i = 0;
    float m = -INFINITY;
#ifdef WINNOW_AVX2
    if (n >= 8) {
        __m256 acc = _mm256_loadu_ps(x);
        for (i = 8; i + 8 <= n; i += 8) acc = _mm256_max_ps(acc, _mm256_loadu_ps(x + i));
        alignas(32) float lanes[8];
        _mm256_store_ps(lanes, acc);
        for (float v : lanes) m = std::max(m, v);
    }
#endif
    for (; i < n; ++i) m = std::max(m, x[i]);
    return m;
}

// The kept keys of the row at q_pos as runs [runs[2r], runs[2r + 1]); adjacent kept blocks form one run. `row` is the
// row's block keep flags (null: dense); keys before first_key (a sliding window's start) are left out. Returns the
// number of runs; *kept gets the number of keys in them.
inline int key_runs(const uint8_t* row, int block, int q_pos, int* runs, int* kept, int first_key = 0) {
    const int n_keys = q_pos + 1;
    if (!row) {
        runs[0] = first_key, runs[1] = n_keys, *kept = n_keys - first_key;
        return 1;
    }
    int n_runs = 0;
    *kept = 0;
    for (int kb = 0; kb * block < n_keys; ++kb) {
        if (!row[kb]) continue;
        const int b = std::max(first_key, kb * block), e = std::min(n_keys, kb * block + block);
        if (b >= e) continue;
        *kept += e - b;
        if (n_runs && runs[2 * n_runs - 1] == b) runs[2 * n_runs - 1] = e;
        else runs[2 * n_runs] = b, runs[2 * n_runs + 1] = e, ++n_runs;
    }
    return n_runs;
}

// Runs f with the traits of the cache's element type (KvF32, KvF16 or KvBF16).
template <class F>
void with_kv_type(GgmlType type, F&& f) {
    switch (type) {
    case GgmlType::F32: f(KvF32{}); return;
    case GgmlType::F16: f(KvF16{}); return;
    case GgmlType::BF16: f(KvBF16{}); return;
    default: throw Error(ErrorKind::unsupported, std::string("cpu attention: no KV cache of ") + ggml_type_name(type));
    }
}

} // namespace winnow::cpu
