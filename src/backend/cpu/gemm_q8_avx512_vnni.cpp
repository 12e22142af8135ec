// The q8 prefill kernel for AVX-512 VNNI: vpdpbusd multiplies and sums four u8 × i8 pairs per lane in one
// instruction (maddubs + madd on AVX2), and AVX-512VL's 32 vector registers hold a 4 × 4 tile. Compiled with
// -mavx512f -mavx512bw -mavx512vl -mavx512vnni; chosen at run time only where the CPU has them.
#include <immintrin.h>

#include "backend/cpu/gemm_q8_operands.h"
#include "io/quant.h"

namespace winnow::cpu {
namespace {

inline __m256i dot_lanes(__m256i a_u8, __m256i b_i8) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), a_u8, b_i8); }

constexpr int kTileRows = 4;

// whether dot_lanes saturates when the unsigned operand exceeds 127 (maddubs sums pairs in int16)
constexpr bool kDotSaturates = false;

#include "backend/cpu/gemm_q8_tile.inc"
#include "backend/cpu/gemv_q8_row.inc"

} // namespace

void gemm_q8_rows_avx512_vnni(const Q8Operands& p, int64_t r0, int64_t r1) { rows(p, r0, r1); }
void gemv_q8_rows_avx512_vnni(const Q8RowOperands& p, int64_t r0, int64_t r1) { gemv(p, r0, r1); }

} // namespace winnow::cpu
