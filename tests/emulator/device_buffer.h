#pragma once
// A zeroed device array for the emulator's tests (test_simt_emulator.cu, racecheck/test_racecheck.cu), read back whole.
#include <cuda_runtime.h>

#include <gtest/gtest.h>

#include <cstddef>
#include <vector>

namespace winnow::emu_test {

template <class T>
struct DeviceBuffer {
    T* p = nullptr;
    size_t n = 0;
    explicit DeviceBuffer(size_t count) : n(count) {
        EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&p), n * sizeof(T)), cudaSuccess);
        EXPECT_EQ(cudaMemset(p, 0, n * sizeof(T)), cudaSuccess);
    }
    ~DeviceBuffer() { cudaFree(p); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    std::vector<T> read() const {
        std::vector<T> h(n);
        EXPECT_EQ(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
        return h;
    }
};

} // namespace winnow::emu_test
