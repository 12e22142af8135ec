#pragma once
// cuBLAS's GEMV as the reference a benchmark holds winnow's head kernels to (bench head --device cuda): y = W x for a
// dense head W on the device (F32 [rows][cols]: cublasSgemv; F16 or BF16: cublasGemmEx with fp32 accumulation, x first
// converted to W's type by the backend's copy_rows), in the CUDA backend's stream, not waiting. Its own cuBLAS handle,
// in cuBLAS's default math mode (the backend's handle is pedantic for prefill parity). Built only with CUDA.
#include "backend/backend.h"

namespace winnow::cuda {

class CublasGemv {
public:
    explicit CublasGemv(Backend& cuda_backend); // throws winnow::Error unless it is the CUDA backend
    ~CublasGemv();
    CublasGemv(const CublasGemv&) = delete;
    CublasGemv& operator=(const CublasGemv&) = delete;
    // w: F32, F16 or BF16 device tensor [rows][cols]; x: F32 [1][cols]; y: F32 [1][rows].
    void run(const Tensor& w, const Tensor& x, const Tensor& y);

private:
    Backend& be_;
    void* handle_ = nullptr; // cublasHandle_t
    Tensor x_half_;          // x in w's type (F16 / BF16)
};

} // namespace winnow::cuda
