// fp32 prefill products: blocks of weight rows decoded to fp32 once per call and multiplied by OpenBLAS sgemm,
// which keeps the tile of each operand in registers and caches (the per-row path streams every token's activations
// past each weight row). See gemm.h.
#include <algorithm>
#include <cblas.h>
#include <omp.h>
#include <vector>

#include "backend/cpu/blas.h"
#include "backend/cpu/gemm.h"
#include "io/quant.h"

namespace winnow::cpu {

void gemm_f32(const Matrix& w, const float* bias, const float* x, int n_tokens, float* y, int n_threads) {
    prepare_blas(); // our OpenMP threads split the rows: OpenBLAS must not start its own threads inside each of them
    const int64_t rows = w.rows, cols = w.cols;
    // a block of decoded rows of about 256 KiB stays in L2 while sgemm streams the activations past it
    const int64_t block = std::clamp<int64_t>((256 * 1024 / (cols * 4)) / 16 * 16, 16, 512);
    const int64_t n_blocks = (rows + block - 1) / block;
    const bool stored_f32 = w.type == GgmlType::F32 && w.row_bytes == static_cast<size_t>(cols) * sizeof(float);
#pragma omp parallel num_threads(n_threads)
    {
        // kept across calls: a fresh 256 KiB buffer per call would be mapped and faulted in every time
        thread_local std::vector<float> decoded;
#pragma omp for schedule(static)
        for (int64_t b = 0; b < n_blocks; ++b) {
            const int64_t r0 = b * block, nr = std::min(block, rows - r0);
            const float* wb = reinterpret_cast<const float*>(w.row(r0));
            if (!stored_f32) {
                decoded.resize(static_cast<size_t>(block * cols));
                for (int64_t r = 0; r < nr; ++r) dequantize_row(w.type, w.row(r0 + r), decoded.data() + r * cols, static_cast<size_t>(cols));
                wb = decoded.data();
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_tokens, static_cast<int>(nr), static_cast<int>(cols), 1.0f, x, static_cast<int>(cols), wb,
                        static_cast<int>(cols), 0.0f, y + r0, static_cast<int>(rows));
            if (bias)
                for (int t = 0; t < n_tokens; ++t)
                    for (int64_t r = 0; r < nr; ++r) y[t * rows + r0 + r] += bias[r0 + r];
        }
    }
}

} // namespace winnow::cpu
