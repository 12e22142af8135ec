#pragma once
// NumPy's .npy format (version 1.0) for a 2-D float32 array, C order: what `np.load` reads with no other library. The
// logits command writes its rows this way so that any Python peer (HF transformers, llama-cpp-python) can compare.
#include <cstdint>
#include <span>
#include <string>

namespace winnow::io {

// The 10-byte preamble and the header dictionary, padded with spaces and a newline so the data starts at a multiple
// of 64 bytes, as the format asks.
std::string npy_header_f32(int64_t rows, int64_t cols);

// Writes rows x cols floats (row-major, rows * cols of them in data) to path atomically (PATH.tmp then commit_file).
// Throws winnow::Error (io) naming the file on failure; a failed write leaves no file and the old one untouched.
void write_npy_f32(const std::string& path, std::span<const float> data, int64_t rows, int64_t cols);

} // namespace winnow::io
