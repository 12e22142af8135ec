#include <algorithm>
#include <vector>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device.h"

namespace winnow::cuda {

int device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); // clear the sticky "no driver / no device" error
        return 0;
    }
    return n;
}

std::string device_name(int device) {
    cudaDeviceProp prop{};
    WINNOW_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    return prop.name;
}

double measure_copy_bandwidth_gbps(int device, size_t bytes, int reps) {
    WINNOW_CUDA_CHECK(cudaSetDevice(device));
    void *a = nullptr, *b = nullptr;
    WINNOW_CUDA_CHECK(cudaMalloc(&a, bytes));
    WINNOW_CUDA_CHECK(cudaMalloc(&b, bytes));
    WINNOW_CUDA_CHECK(cudaMemset(a, 1, bytes)); // not zeros: METHOD.md
    cudaEvent_t start, stop;
    WINNOW_CUDA_CHECK(cudaEventCreate(&start));
    WINNOW_CUDA_CHECK(cudaEventCreate(&stop));
    std::vector<float> ms;
    for (int r = -1; r < reps; ++r) {
        WINNOW_CUDA_CHECK(cudaEventRecord(start));
        WINNOW_CUDA_CHECK(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice));
        WINNOW_CUDA_CHECK(cudaEventRecord(stop));
        WINNOW_CUDA_CHECK(cudaEventSynchronize(stop));
        float t = 0;
        WINNOW_CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
        if (r >= 0) ms.push_back(t);
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    cudaFree(a);
    cudaFree(b);
    std::sort(ms.begin(), ms.end());
    return 2.0 * static_cast<double>(bytes) / (ms[ms.size() / 2] * 1e-3) / 1e9;
}

} // namespace winnow::cuda
