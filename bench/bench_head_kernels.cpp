// Cost per weight element of the adaptive head's kernels against the exact head's, on the SmolLM2 head shape
// (n = 49152 rows, d = 576, Q8_0 values), one thread (Google Benchmark; items = weight elements processed):
//   ExactRowDot      the exact head: a stored Q8_0 row dotted with fp32 x (vec_dot, what the GEMV runs)
//   ColumnDot        57 sampled columns (0.1 d') of the column-major int8 copy, plain accumulate: the floor of any
//                    column-sampled head on this layout
//   ColumnDesRaj     the same columns with the Des Raj running sums (the fast head's warm-up kernel)
//   PqLookup16/M     a product-quantised head's logits (bench/head_pq_residual_study.py): per arm, the sum over M
//                    subspaces of a 16-entry fp32 table indexed by the arm's 4-bit code (codes a byte each, column-major
//                    per subspace), by two 8-lane permutes and a blend (AVX2); items = lookups (n M)
//   PqLookup16x512/M the same by one 16-lane permute (AVX-512 hosts only)
//   PqGather256/M    256-entry tables (8-bit codes) by 8-lane gathers
// The ratio ColumnDesRaj / ExactRowDot per element is why the adaptive head needs a sample gain of about that
// ratio times the wanted speed-up (bench/reports/adaptive-head-smollm2.md).
#include <algorithm>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include "backend/cpu/simd.h"
#include "backend/cpu/vec_dot.h"
#include "io/quant.h"

namespace {

constexpr int kRows = 49152, kCols = 576, kSampled = 57;

struct Head {
    std::vector<winnow::BlockQ8_0> rows;    // row-major Q8_0
    std::vector<int8_t> q;                  // column-major quants [col][row]
    std::vector<uint16_t> s;                // block scales [block][row]
    std::vector<float> x;
    std::vector<int> cols;
    Head() : rows(static_cast<size_t>(kRows) * kCols / 32), q(static_cast<size_t>(kRows) * kCols), s(static_cast<size_t>(kRows) * kCols / 32), x(kCols) {
        std::mt19937 rng(1);
        std::normal_distribution<float> nd(0.0f, 1.0f);
        std::vector<float> row(kCols);
        for (int i = 0; i < kRows; ++i) {
            for (auto& v : row) v = nd(rng) * 0.05f;
            winnow::quantize_row_ref(winnow::GgmlType::Q8_0, row.data(), &rows[static_cast<size_t>(i) * kCols / 32], kCols);
            for (int b = 0; b < kCols / 32; ++b) {
                const auto& blk = rows[static_cast<size_t>(i) * kCols / 32 + b];
                s[static_cast<size_t>(b) * kRows + i] = blk.d;
                for (int j = 0; j < 32; ++j) q[static_cast<size_t>(b * 32 + j) * kRows + i] = blk.qs[j];
            }
        }
        for (auto& v : x) v = nd(rng);
        std::vector<int> perm(kCols);
        for (int j = 0; j < kCols; ++j) perm[j] = j;
        std::shuffle(perm.begin(), perm.end(), rng);
        cols.assign(perm.begin(), perm.begin() + kSampled);
    }
};

Head& head() {
    static Head h;
    return h;
}

void ExactRowDot(benchmark::State& st) {
    auto& h = head();
    winnow::cpu::PreparedActivation xp;
    winnow::cpu::prepare_activation(winnow::GgmlType::Q8_0, h.x.data(), kCols, xp);
    std::vector<float> y(kRows);
    for (auto _ : st) {
        for (int i = 0; i < kRows; ++i) y[i] = winnow::cpu::vec_dot(winnow::GgmlType::Q8_0, &h.rows[static_cast<size_t>(i) * kCols / 32], xp, kCols);
        benchmark::DoNotOptimize(y.data());
    }
    st.SetItemsProcessed(st.iterations() * static_cast<int64_t>(kRows) * kCols);
}

template <bool DesRaj>
void ColumnKernel(benchmark::State& st) {
#ifdef WINNOW_AVX2
    auto& h = head();
    std::vector<float> K(kRows), Z(kRows), Z2(kRows);
    for (auto _ : st) {
        for (int c0 = 0; c0 < kRows; c0 += 1024)
            for (int m = 0; m < kSampled; ++m) {
                const int j = h.cols[m];
                const int8_t* qc = h.q.data() + static_cast<size_t>(j) * kRows;
                const uint16_t* sr = h.s.data() + static_cast<size_t>(j / 32) * kRows;
                const __m256 xm = _mm256_set1_ps(h.x[j]), cm = _mm256_set1_ps(1.3f);
                for (int b = c0; b < c0 + 1024; b += 8) {
                    const __m256 qq = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(qc + b))));
                    const __m256 sc = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sr + b)));
                    const __m256 y = _mm256_mul_ps(qq, _mm256_mul_ps(sc, xm));
                    const __m256 k = _mm256_loadu_ps(&K[b]);
                    if constexpr (DesRaj) {
                        const __m256 z = _mm256_fmadd_ps(y, cm, k);
                        _mm256_storeu_ps(&K[b], _mm256_add_ps(k, y));
                        _mm256_storeu_ps(&Z[b], _mm256_add_ps(_mm256_loadu_ps(&Z[b]), z));
                        _mm256_storeu_ps(&Z2[b], _mm256_fmadd_ps(z, z, _mm256_loadu_ps(&Z2[b])));
                    } else {
                        _mm256_storeu_ps(&K[b], _mm256_add_ps(k, y));
                    }
                }
            }
        benchmark::DoNotOptimize(K.data());
        benchmark::DoNotOptimize(Z2.data());
    }
    st.SetItemsProcessed(st.iterations() * static_cast<int64_t>(kRows) * kSampled);
#else
    st.SkipWithError("needs AVX2");
#endif
}

// PQ logits over all arms: acc[i] = sum_s table[s][code[s][i]], 1024 arms at a time so acc stays in L1.
// (GCC 12 reports the AVX-512 intrinsics' own undefined-vector placeholders as maybe uninitialized.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
enum class Lookup { permute16, permute16x512, gather256 };

template <Lookup L>
void PqLookup(benchmark::State& st) {
#ifdef WINNOW_AVX2
    const int M = static_cast<int>(st.range(0)), K = L == Lookup::gather256 ? 256 : 16;
    std::vector<uint8_t> code(static_cast<size_t>(kRows) * M);
    std::vector<float> table(static_cast<size_t>(M) * K), acc(kRows);
    std::mt19937 rng(2);
    for (auto& c : code) c = static_cast<uint8_t>(rng() % K);
    for (auto& v : table) v = static_cast<float>(rng() % 1000) * 1e-3f;
    for (auto _ : st) {
        for (int c0 = 0; c0 < kRows; c0 += 1024) {
            std::fill(acc.begin() + c0, acc.begin() + c0 + 1024, 0.0f);
            for (int s = 0; s < M; ++s) {
                const uint8_t* cs = code.data() + static_cast<size_t>(s) * kRows;
                const float* ts = table.data() + static_cast<size_t>(s) * K;
                if constexpr (L == Lookup::permute16x512) {
#ifdef __AVX512F__
                    const __m512 t16 = _mm512_loadu_ps(ts);
                    for (int b = c0; b < c0 + 1024; b += 16) {
                        const __m512i c = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(cs + b)));
                        _mm512_storeu_ps(&acc[b], _mm512_add_ps(_mm512_loadu_ps(&acc[b]), _mm512_permutexvar_ps(c, t16)));
                    }
#endif
                } else if constexpr (L == Lookup::permute16) {
                    const __m256 lo = _mm256_loadu_ps(ts), hi = _mm256_loadu_ps(ts + 8);
                    for (int b = c0; b < c0 + 1024; b += 8) {
                        const __m256i c = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(cs + b)));
                        const __m256 upper = _mm256_castsi256_ps(_mm256_slli_epi32(c, 28)); // bit 3 of the code to the sign
                        const __m256 v = _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, c), _mm256_permutevar8x32_ps(hi, c), upper);
                        _mm256_storeu_ps(&acc[b], _mm256_add_ps(_mm256_loadu_ps(&acc[b]), v));
                    }
                } else {
                    for (int b = c0; b < c0 + 1024; b += 8) {
                        const __m256i c = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(cs + b)));
                        _mm256_storeu_ps(&acc[b], _mm256_add_ps(_mm256_loadu_ps(&acc[b]), _mm256_i32gather_ps(ts, c, 4)));
                    }
                }
            }
        }
        benchmark::DoNotOptimize(acc.data());
    }
    st.SetItemsProcessed(st.iterations() * static_cast<int64_t>(kRows) * M);
#else
    st.SkipWithError("needs AVX2");
#endif
}
#pragma GCC diagnostic pop

BENCHMARK(ExactRowDot)->Unit(benchmark::kMillisecond);
BENCHMARK(ColumnKernel<false>)->Name("ColumnDot")->Unit(benchmark::kMillisecond);
BENCHMARK(ColumnKernel<true>)->Name("ColumnDesRaj")->Unit(benchmark::kMillisecond);
BENCHMARK(PqLookup<Lookup::permute16>)->Name("PqLookup16")->Arg(72)->Arg(144)->Arg(288)->Unit(benchmark::kMillisecond);
#ifdef __AVX512F__
BENCHMARK(PqLookup<Lookup::permute16x512>)->Name("PqLookup16x512")->Arg(72)->Arg(144)->Arg(288)->Unit(benchmark::kMillisecond);
#endif
BENCHMARK(PqLookup<Lookup::gather256>)->Name("PqGather256")->Arg(36)->Arg(72)->Unit(benchmark::kMillisecond);

} // namespace

BENCHMARK_MAIN();
