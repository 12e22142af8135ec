#pragma once
// C += alpha * op(A) * op(B) (beta scales C first), row-major, fp32: OpenBLAS, run single-threaded inside each of
// our OpenMP threads (the M rows are split among them) so its thread pool and OpenMP's never compete for the cores.
namespace winnow::train {

void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc);

} // namespace winnow::train
