#pragma once
// The CUDA backend: every decoder op on one GPU, on tensors in device memory, in one stream. Weights are kept on the
// device in their stored format (Q4_0/Q4_1/Q8_0 blocks, F16/BF16/F32) and decoded in registers by the GEMV; prefill
// products decode the matrix to fp32 in a scratch buffer and call cuBLAS sgemm (fp32, no TF32). The KV cache may be
// F32, F16 or BF16.
#include <memory>

#include "backend/backend.h"

namespace winnow {

// Throws winnow::Error(unsupported) with one line when there is no usable GPU (no driver, no device, bad index).
std::unique_ptr<Backend> make_cuda_backend(int device = 0);

// The CUDA backend's stream (a cudaStream_t), for code inside src/backend/cuda that runs work in the backend's order
// (the cuBLAS reference of bench head: cuda/cublas_gemv.h). Throws winnow::Error for another backend.
void* cuda_backend_stream(Backend& be);

} // namespace winnow
