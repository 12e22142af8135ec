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

} // namespace winnow::cuda
