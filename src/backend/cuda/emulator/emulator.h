#pragma once
// What the SIMT emulator's runtime (runtime_api.cpp, cublas_api.cpp) asks of its scheduler (scheduler.cpp), and the
// stream work queue both runtimes share. Not for the .cu files: they see simt.h.
#include <cuda_runtime.h>

#include <cstddef>
#include <functional>
#include <utility>
#include <vector>

namespace winnow::emu {

// Runs body once per thread of every block of grid, now, on the calling thread. Throws on a deadlock, a failed
// collective or an exception in a thread. cooperative: all blocks run together and may meet at grid_barrier().
void run_grid(dim3 grid, dim3 block, size_t shared, const std::function<void()>& body, bool cooperative = false);

// Work on a stream: run now, or recorded while the stream is being captured into a graph.
void enqueue(cudaStream_t stream, std::function<void()> work);

// Whether [p, p + bytes) lies inside one allocation of cudaMalloc / cudaMallocHost.
bool is_device_range(const void* p, size_t bytes);

// Every allocation of cudaMalloc / cudaMallocHost as [base, end), sorted (the race detector's map of device memory).
std::vector<std::pair<const char*, const char*>> device_allocations();

} // namespace winnow::emu
