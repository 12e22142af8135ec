#include "backend/cuda/cublas_gemv.h"

#include <cublas_v2.h>
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "winnow/error.h"

namespace winnow::cuda {

namespace {

void check(cublasStatus_t st, const char* what) {
    if (st != CUBLAS_STATUS_SUCCESS) throw Error(ErrorKind::io, std::string(what) + " failed: " + cublasGetStatusString(st));
}

} // namespace

CublasGemv::CublasGemv(Backend& cuda_backend) : be_(cuda_backend) {
    auto stream = static_cast<cudaStream_t>(cuda_backend_stream(be_));
    cublasHandle_t h = nullptr;
    check(cublasCreate(&h), "cublasCreate");
    handle_ = h;
    check(cublasSetStream(h, stream), "cublasSetStream");
}

CublasGemv::~CublasGemv() {
    if (handle_) cublasDestroy(static_cast<cublasHandle_t>(handle_));
}

void CublasGemv::run(const Tensor& w, const Tensor& x, const Tensor& y) {
    const GgmlType t = w.type();
    if (w.device() != Device::cuda || (t != GgmlType::F32 && t != GgmlType::F16 && t != GgmlType::BF16))
        throw Error(ErrorKind::invalid_argument, "cublas gemv: the head must be an F32, F16 or BF16 device tensor, got " + w.describe());
    if (x.device() != Device::cuda || x.type() != GgmlType::F32 || x.rows() != 1 || x.cols() != w.cols() || y.device() != Device::cuda ||
        y.type() != GgmlType::F32 || y.rows() != 1 || y.cols() != w.rows())
        throw Error(ErrorKind::invalid_argument, "cublas gemv: x " + x.describe() + " and y " + y.describe() + " do not fit " + w.describe());
    auto h = static_cast<cublasHandle_t>(handle_);
    const int rows = static_cast<int>(w.rows()), cols = static_cast<int>(w.cols());
    const float one = 1.0f, zero = 0.0f;
    // cuBLAS is column-major: the row-major [rows][cols] head is a cols x rows matrix A, and y = A^T x
    if (t == GgmlType::F32) {
        check(cublasSgemv(h, CUBLAS_OP_T, cols, rows, &one, w.f32(), cols, x.f32(), 1, &zero, y.f32(), 1), "cublasSgemv");
        return;
    }
    if (x_half_.type() != t || x_half_.cols() != x.cols()) x_half_ = be_.alloc(t, 1, x.cols());
    be_.copy_rows(x, x_half_, 0); // F32 -> F16/BF16, in the same stream
    const cudaDataType dt = t == GgmlType::F16 ? CUDA_R_16F : CUDA_R_16BF;
    check(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, rows, 1, cols, &one, w.raw(), dt, cols, x_half_.raw(), dt, cols, &zero, y.f32(), CUDA_R_32F, rows,
                       CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
          "cublasGemmEx");
}

} // namespace winnow::cuda
