// The q8 prefill kernel for AVX2 (+ FMA): compiled with -mavx2 -mfma -mno-avx512f whatever the build's -march, so
// it is the kernel an AVX2-only host runs, and it can be tested on any host that has AVX2.
#include <immintrin.h>

#include "backend/cpu/gemm_q8_operands.h"
#include "io/quant.h"

namespace winnow::cpu {
namespace {

// u8 × i8 pairs summed to int16 (no saturation: |products| <= 128 · 127 · 2 < 32768), then pairs of those to int32
inline __m256i dot_lanes(__m256i a_u8, __m256i b_i8) { return _mm256_madd_epi16(_mm256_maddubs_epi16(a_u8, b_i8), _mm256_set1_epi16(1)); }

constexpr int kTileRows = 2; // 2 × 4 accumulators + 2 weight and 4 activation registers fit AVX2's 16

// whether dot_lanes saturates when the unsigned operand exceeds 127 (maddubs sums pairs in int16)
constexpr bool kDotSaturates = true;

#include "backend/cpu/gemm_q8_tile.inc"
#include "backend/cpu/gemv_q8_row.inc"

} // namespace

void gemm_q8_rows_avx2(const Q8Operands& p, int64_t r0, int64_t r1) { rows(p, r0, r1); }
void gemv_q8_rows_avx2(const Q8RowOperands& p, int64_t r0, int64_t r1) { gemv(p, r0, r1); }

} // namespace winnow::cpu
