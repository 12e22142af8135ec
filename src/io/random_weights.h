#pragma once
// Random stored weight matrices, for benchmarks and the op harness: the bytes of `rows` rows of `cols` values in `type`
// (cols a multiple of the type's block size), rows ggml_row_bytes(type, cols) apart.
//  - F32 and the core types (F16, BF16, Q8_0, Q4_0, Q4_1): N(0, 0.05) values (each row a run of a pool of
//    65,536 of them from a random offset) through quantize_row_ref;
//  - the preset types (Q5_0, Q5_1, Q4_K, Q5_K, Q6_K): random quant bytes with each block's fp16 scale fields set to
//    modest positive values, so that the weights are of order 0.05 too. (winnow encodes these types too since
//    2026-12-06; random blocks are kept because they reach every bit pattern of the quants, scales and mins, which an
//    encoder's output of smooth values does not.)
// The same seed gives the same bytes. dequantize_row gives the values.
#include <cstdint>
#include <vector>

#include "io/ggml_type.h"

namespace winnow {

std::vector<uint8_t> random_stored_weights(GgmlType type, int64_t rows, int64_t cols, uint64_t seed);

} // namespace winnow
