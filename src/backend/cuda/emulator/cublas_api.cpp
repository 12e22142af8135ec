// The cuBLAS calls the CUDA backend makes, for the SIMT emulator's build (simt.h): column-major products on the host,
// each enqueued on the handle's stream (so a captured decode step records them like a kernel). Accumulation is fp32 in
// k order, as a reference; cuBLAS's own order differs, which the GPU tests' tolerances already allow for.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "backend/cuda/emulator/emulator.h"

struct cublasContext {
    cudaStream_t stream = nullptr;
};

namespace {

// Element (r, c) of op(M) for a column-major M with leading dimension ld.
template <class Load>
float at(const Load& load, cublasOperation_t op, int ld, int r, int c) {
    return op == CUBLAS_OP_N ? load(static_cast<size_t>(c) * ld + r) : load(static_cast<size_t>(r) * ld + c);
}

float load_typed(const void* p, cudaDataType t, size_t i) {
    switch (t) {
    case CUDA_R_32F: return static_cast<const float*>(p)[i];
    case CUDA_R_16F: return __half2float(static_cast<const __half*>(p)[i]);
    case CUDA_R_16BF: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    default: throw std::invalid_argument("SIMT emulator: cublasGemmEx: unsupported data type");
    }
}

// C = alpha op(A) op(B) + beta C, C m x n, op(A) m x k, op(B) k x n.
template <class LoadA, class LoadB>
void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, LoadA a, int lda, LoadB b, int ldb, float beta, float* C, int ldc) {
    for (int j = 0; j < n; ++j)
        for (int i = 0; i < m; ++i) {
            float s = 0.0f;
            for (int p = 0; p < k; ++p) s = std::fma(at(a, ta, lda, i, p), at(b, tb, ldb, p, j), s);
            float& c = C[static_cast<size_t>(j) * ldc + i];
            c = beta == 0.0f ? alpha * s : alpha * s + beta * c;
        }
}

} // namespace

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t* h) {
    *h = new cublasContext;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy_v2(cublasHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t s) {
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
const char* cublasGetStatusString(cublasStatus_t s) { return s == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_(SIMT emulator error)"; }

cublasStatus_t cublasSgemv_v2(cublasHandle_t h, cublasOperation_t trans, int m, int n, const float* alpha, const float* A, int lda, const float* x,
                              int incx, const float* beta, float* y, int incy) {
    if (m < 0 || n < 0 || lda < std::max(1, m) || incx == 0 || incy == 0) return CUBLAS_STATUS_INVALID_VALUE;
    const float al = *alpha, be = *beta;
    winnow::emu::enqueue(h->stream, [=] {
        const int rows = trans == CUBLAS_OP_N ? m : n, inner = trans == CUBLAS_OP_N ? n : m;
        for (int i = 0; i < rows; ++i) {
            float s = 0.0f;
            for (int p = 0; p < inner; ++p) {
                const float a = trans == CUBLAS_OP_N ? A[static_cast<size_t>(p) * lda + i] : A[static_cast<size_t>(i) * lda + p];
                s = std::fma(a, x[static_cast<size_t>(p) * incx], s);
            }
            float& out = y[static_cast<size_t>(i) * incy];
            out = be == 0.0f ? al * s : al * s + be * out;
        }
    });
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float* alpha, const float* A,
                              int lda, const float* B, int ldb, const float* beta, float* C, int ldc) {
    if (m < 0 || n < 0 || k < 0 || ldc < std::max(1, m)) return CUBLAS_STATUS_INVALID_VALUE;
    const float al = *alpha, be = *beta;
    winnow::emu::enqueue(h->stream, [=] {
        gemm(ta, tb, m, n, k, al, [A](size_t i) { return A[i]; }, lda, [B](size_t i) { return B[i]; }, ldb, be, C, ldc);
    });
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void* alpha, const void* A,
                            cudaDataType at_, int lda, const void* B, cudaDataType bt, int ldb, const void* beta, void* C, cudaDataType ct, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t) {
    if (ct != CUDA_R_32F || (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_PEDANTIC)) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (m < 0 || n < 0 || k < 0 || ldc < std::max(1, m)) return CUBLAS_STATUS_INVALID_VALUE;
    const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
    winnow::emu::enqueue(h->stream, [=] {
        gemm(ta, tb, m, n, k, al, [A, at_](size_t i) { return load_typed(A, at_, i); }, lda, [B, bt](size_t i) { return load_typed(B, bt, i); }, ldb,
             be, static_cast<float*>(C), ldc);
    });
    return CUBLAS_STATUS_SUCCESS;
}

} // extern "C"
