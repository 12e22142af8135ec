#include "train/sgemm.h"

#include "backend/cpu/blas.h"

#include <algorithm>

#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace winnow::train {

void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc) {
    if (M <= 0 || N <= 0) return;
    cpu::prepare_blas(); // one OpenBLAS thread per call: the OpenMP threads below split the product
    // split the larger of M and N among the threads
    const bool split_m = M >= N;
#pragma omp parallel
    {
#ifdef _OPENMP
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
        const int t = 0, nt = 1;
#endif
        const int total = split_m ? M : N, per = (total + nt - 1) / nt, first = std::min(total, t * per), count = std::min(total, first + per) - first;
        if (count > 0) {
            if (split_m) {
                const float* a = trans_a ? A + first : A + static_cast<size_t>(first) * lda;
                cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, count, N, K, alpha, a, lda, B, ldb, beta,
                            C + static_cast<size_t>(first) * ldc, ldc);
            } else {
                const float* b = trans_b ? B + static_cast<size_t>(first) * ldb : B + first;
                cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, count, K, alpha, A, lda, b, ldb, beta,
                            C + first, ldc);
            }
        }
    }
}

} // namespace winnow::train
