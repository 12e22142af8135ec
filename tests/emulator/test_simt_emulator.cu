// The SIMT emulator (src/backend/cuda/emulator/simt.h) against what the CUDA Programming Guide defines, and its checks:
// each meeting point's result, and each misuse it must refuse rather than run. Built only with -DWINNOW_CUDA_EMULATOR=ON;
// a test here that passed wrongly would let the GPU tests pass on kernels that fail on a GPU.
#include <cuda_runtime.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/cuda/grid_sync.cuh"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/shared_memory.cuh"
#include "emulator/device_buffer.h"

namespace {

using winnow::emu_test::DeviceBuffer;

__global__ void shuffles_kernel(int* out) {
    const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
    int* o = out + 4 * 64 * w;
    o[lane] = __shfl_xor_sync(0xffffffffu, lane * 10, 5);
    o[32 + lane] = __shfl_up_sync(0xffffffffu, lane * 10, 3);
    o[64 + lane] = __shfl_down_sync(0xffffffffu, lane * 10, 3, 16);
    o[96 + lane] = __shfl_sync(0xffffffffu, lane * 10, 7, 8);
    o[128 + lane] = static_cast<int>(__ballot_sync(0xffffffffu, lane % 3 == 0) == 0x49249249u);
    o[160 + lane] = __syncthreads_count(threadIdx.x % 2);
    o[192 + lane] = __syncthreads_and(threadIdx.x < 1000);
    o[224 + lane] = static_cast<int>(__match_any_sync(0xffffffffu, lane % 3)); // the lanes of the same residue
}

TEST(SimtEmulator, ShufflesVotesAndBarrierCountsFollowTheProgrammingGuide) {
    DeviceBuffer<int> out(2 * 4 * 64);
    winnow::cuda::launch_plain(shuffles_kernel, 1, 64, 0, nullptr, out.p);
    ASSERT_EQ(cudaGetLastError(), cudaSuccess);
    const std::vector<int> o = out.read();
    for (int w = 0; w < 2; ++w)
        for (int lane = 0; lane < 32; ++lane) {
            const int* r = o.data() + 4 * 64 * w;
            EXPECT_EQ(r[lane], (lane ^ 5) * 10);
            EXPECT_EQ(r[32 + lane], (lane < 3 ? lane : lane - 3) * 10); // lanes below delta keep their own value
            EXPECT_EQ(r[64 + lane], ((lane % 16) + 3 >= 16 ? lane : lane + 3) * 10); // per 16-lane segment
            EXPECT_EQ(r[96 + lane], ((lane & ~7) + 7) * 10); // lane 7 of each 8-lane segment
            EXPECT_EQ(r[128 + lane], 1);
            EXPECT_EQ(r[160 + lane], 32); // 64 threads, half of them odd
            EXPECT_EQ(r[192 + lane], 1);
            EXPECT_EQ(static_cast<unsigned>(r[224 + lane]), 0x49249249u << (lane % 3)); // every third lane from lane % 3
        }
}

// __match_any_sync over part of a warp, and on 64-bit and float values (compared as bits: -0.0f is not 0.0f there).
__global__ void match_kernel(unsigned* out) {
    const int lane = threadIdx.x;
    if (lane < 16) out[lane] = __match_any_sync(0x0000ffffu, lane % 3); // only the low half's lanes answer
    out[32 + lane] = __match_any_sync(0xffffffffu, static_cast<long long>(lane / 8) << 40);
    out[64 + lane] = __match_any_sync(0xffffffffu, lane == 5 ? -0.0f : 0.0f);
}

TEST(SimtEmulator, MatchAnyGivesTheLanesOfEqualValueInTheMask) {
    DeviceBuffer<unsigned> out(96);
    winnow::cuda::launch_plain(match_kernel, 1, 32, 0, nullptr, out.p);
    ASSERT_EQ(cudaGetLastError(), cudaSuccess);
    const std::vector<unsigned> o = out.read();
    for (int lane = 0; lane < 32; ++lane) {
        if (lane < 16) {
            EXPECT_EQ(o[lane], (0x49249249u << (lane % 3)) & 0xffffu) << "lane " << lane;
        }
        EXPECT_EQ(o[32 + lane], 0xffu << (lane / 8 * 8)) << "lane " << lane;
        EXPECT_EQ(o[64 + lane], lane == 5 ? 1u << 5 : ~(1u << 5)) << "lane " << lane;
    }
}

// Lanes may meet in smaller groups first (legal since Volta): the upper half shuffles among itself, then the whole warp.
__global__ void partial_then_full_kernel(int* out) {
    const int lane = threadIdx.x;
    int v = lane;
    if (lane >= 16) v = __shfl_xor_sync(0xffff0000u, v, 1);
    v = __shfl_xor_sync(0xffffffffu, v, 2);
    out[lane] = v;
}

TEST(SimtEmulator, LanesMayMeetInSmallerGroupsFirst) {
    DeviceBuffer<int> out(32);
    winnow::cuda::launch_plain(partial_then_full_kernel, 1, 32, 0, nullptr, out.p);
    ASSERT_EQ(cudaGetLastError(), cudaSuccess);
    const std::vector<int> o = out.read();
    for (int lane = 0; lane < 32; ++lane) {
        const int src = lane ^ 2; // the full-mask shuffle reads lane ^ 2, which holds its own (swapped above 16) value
        EXPECT_EQ(o[lane], src >= 16 ? (src ^ 1) : src) << "lane " << lane;
    }
}

// A block-wide tree sum in shared memory: wrong without the barriers between its levels.
__global__ void block_sum_kernel(const int* in, int* out) {
    __shared__ int s[256];
    s[threadIdx.x] = in[blockIdx.x * 256 + threadIdx.x];
    __syncthreads();
    for (int h = 128; h > 0; h /= 2) {
        if (static_cast<int>(threadIdx.x) < h) s[threadIdx.x] += s[threadIdx.x + h];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

TEST(SimtEmulator, SharedMemoryIsPerBlockAndBarriersOrderIt) {
    std::vector<int> h(3 * 256);
    std::iota(h.begin(), h.end(), 1);
    DeviceBuffer<int> in(h.size()), out(3);
    ASSERT_EQ(cudaMemcpy(in.p, h.data(), h.size() * sizeof(int), cudaMemcpyHostToDevice), cudaSuccess);
    winnow::cuda::launch_plain(block_sum_kernel, 3, 256, 0, nullptr, in.p, out.p);
    const std::vector<int> o = out.read();
    for (int b = 0; b < 3; ++b) EXPECT_EQ(o[b], std::accumulate(h.begin() + 256 * b, h.begin() + 256 * (b + 1), 0)) << "block " << b;
}

__global__ void dynamic_shared_kernel(float* out, int n) {
    WINNOW_DYNAMIC_SHARED(float, buf);
    if (reinterpret_cast<uintptr_t>(buf) % 16 != 0) __trap(); // the device's dynamic shared memory is 16-byte aligned
    for (int i = threadIdx.x; i < n; i += blockDim.x) buf[i] = static_cast<float>(i + blockIdx.x);
    __syncthreads();
    if (threadIdx.x == 0) {
        float s = 0;
        for (int i = 0; i < n; ++i) s += buf[i];
        out[blockIdx.x] = s;
    }
}

TEST(SimtEmulator, DynamicSharedMemoryNeedsTheOptInAboveTheDefault) {
    DeviceBuffer<float> out(2);
    const int small = 1000, big = 20000; // 4 KB, and 80 KB (above the 48 KB default)
    winnow::cuda::launch_plain(dynamic_shared_kernel, 2, 128, small * sizeof(float), nullptr, out.p, small);
    ASSERT_EQ(cudaGetLastError(), cudaSuccess);
    EXPECT_EQ(out.read()[1], static_cast<float>(small * (small - 1) / 2 + small));
    winnow::cuda::launch_plain(dynamic_shared_kernel, 2, 128, big * sizeof(float), nullptr, out.p, big);
    EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue) << "80 KB of dynamic shared memory without the opt-in must not launch";
    ASSERT_EQ(cudaFuncSetAttribute(dynamic_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, big * sizeof(float)), cudaSuccess);
    winnow::cuda::launch_plain(dynamic_shared_kernel, 2, 128, big * sizeof(float), nullptr, out.p, big);
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);
    float want = 0; // the kernel's float sum, in its order
    for (int i = 0; i < big; ++i) want += static_cast<float>(i);
    EXPECT_EQ(out.read()[0], want);
}

__global__ void write_kernel(int* out) { out[threadIdx.x] = static_cast<int>(threadIdx.x); }

TEST(SimtEmulator, RefusesBadConfigurationsAndHostPointers) {
    DeviceBuffer<int> out(64);
    winnow::cuda::launch_plain(write_kernel, 1, 2048, 0, nullptr, out.p);
    EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration) << "2048 threads per block";
    winnow::cuda::launch_plain(write_kernel, 0, 32, 0, nullptr, out.p);
    EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration) << "an empty grid";
    std::vector<int> host(64);
    EXPECT_THROW(winnow::cuda::launch_plain(write_kernel, 1, 32, 0, nullptr, host.data()), std::runtime_error);
    int* dev_host = nullptr; // pinned host memory is device-accessible
    ASSERT_EQ(cudaMallocHost(reinterpret_cast<void**>(&dev_host), 64 * sizeof(int)), cudaSuccess);
    winnow::cuda::launch_plain(write_kernel, 1, 64, 0, nullptr, dev_host);
    EXPECT_EQ(dev_host[63], 63);
    cudaFreeHost(dev_host);
    EXPECT_EQ(cudaMemcpy(out.p + 60, host.data(), 8 * sizeof(int), cudaMemcpyHostToDevice), cudaErrorInvalidValue) << "a copy past the allocation";
    (void)cudaGetLastError();
}

// Half a warp waits at the block barrier while the other half waits for it in a full-warp shuffle: a hang on the device.
// (Threads that exit do not hold a barrier up, on the device since Volta or here.)
__global__ void divergent_barrier_kernel(int* out) {
    if (threadIdx.x < 16) {
        __syncthreads();
        out[threadIdx.x] = 1;
    } else {
        out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1);
    }
}

// Lane 31 leaves before the full-mask shuffle the others enter.
__global__ void early_exit_kernel(int* out) {
    if (threadIdx.x == 31) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, static_cast<int>(threadIdx.x), 1);
}

// A full-warp mask in a block of 16 threads names lanes that do not exist.
__global__ void short_block_kernel(int* out) { out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1); }

__global__ void trap_kernel(int* out) {
    if (threadIdx.x == 5) __trap();
    out[threadIdx.x] = 1;
}

// A global-memory load of shared memory, static and dynamic (as a staged GEMV slice read with __ldg would make): on the
// device it reads whatever global address the shared one stands for.
__global__ void ldg_static_shared_kernel(int* out) {
    __shared__ int buf[64];
    buf[threadIdx.x] = static_cast<int>(threadIdx.x);
    __syncthreads();
    out[threadIdx.x] = __ldg(buf + (threadIdx.x + 1) % 64);
}
__global__ void ldcg_dynamic_shared_kernel(int* out) {
    WINNOW_DYNAMIC_SHARED(int, buf);
    buf[threadIdx.x] = static_cast<int>(threadIdx.x);
    __syncthreads();
    out[threadIdx.x] = __ldcg(buf + (threadIdx.x + 1) % 64);
}
__global__ void plain_shared_read_kernel(int* out) {
    __shared__ int buf[64];
    buf[threadIdx.x] = static_cast<int>(threadIdx.x);
    __syncthreads();
    out[threadIdx.x] = __ldg(out + 64 + threadIdx.x) + buf[(threadIdx.x + 1) % 64]; // __ldg of device memory is fine
}

std::string launch_error(void (*kernel)(int*), int threads, int* out, size_t shared = 0) {
    try {
        winnow::cuda::launch_plain(kernel, 1, threads, shared, nullptr, out);
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "";
}

TEST(SimtEmulator, DeadlocksExitedLanesAndTrapsAreLaunchErrors) {
    DeviceBuffer<int> out(64);
    EXPECT_NE(launch_error(divergent_barrier_kernel, 32, out.p).find("deadlock"), std::string::npos);
    EXPECT_NE(launch_error(early_exit_kernel, 32, out.p).find("has exited"), std::string::npos);
    EXPECT_NE(launch_error(short_block_kernel, 16, out.p).find("does not have"), std::string::npos);
    EXPECT_NE(launch_error(trap_kernel, 32, out.p).find("__trap"), std::string::npos);
    // and the emulator still runs a correct kernel afterwards
    winnow::cuda::launch_plain(write_kernel, 1, 64, 0, nullptr, out.p);
    EXPECT_EQ(out.read()[40], 40);
}

#ifndef __SANITIZE_ADDRESS__ // a refusal ends the threads mid-kernel, which ASan misreads (as for __trap)
TEST(SimtEmulator, GlobalLoadsOfSharedMemoryAreLaunchErrors) {
    DeviceBuffer<int> out(128);
    EXPECT_NE(launch_error(ldg_static_shared_kernel, 64, out.p).find("global-memory load"), std::string::npos);
    EXPECT_NE(launch_error(ldcg_dynamic_shared_kernel, 64, out.p, 64 * sizeof(int)).find("global-memory load"), std::string::npos);
    EXPECT_EQ(launch_error(plain_shared_read_kernel, 64, out.p), "");
    const std::vector<int> o = out.read();
    EXPECT_EQ(o[10], o[74] + 11);
}
#endif

#ifdef __SANITIZE_ADDRESS__
// Under ASan (scripts/test-emulated.sh --asan) device memory is exactly what cudaMalloc was asked for, so a kernel that
// reads one element past its buffer is reported, as compute-sanitizer's memcheck would report it on the device.
__global__ void read_past_kernel(const int* in, int* out) { out[threadIdx.x] = in[threadIdx.x + 1]; }

TEST(SimtEmulatorAsan, AKernelReadingPastItsBufferIsReported) {
    DeviceBuffer<int> in(32), out(32);
    EXPECT_DEATH(winnow::cuda::launch_plain(read_past_kernel, 1, 32, 0, nullptr, in.p, out.p), "heap-buffer-overflow");
}
#endif

// Several rounds of: each block publishes a value, the grid meets, every thread reads all blocks' values. Run block
// after block, as an ordinary launch runs, block 0 would read values nobody had written yet.
__global__ void grid_rounds_kernel(int* published, int* seen, int rounds) {
    for (int r = 0; r < rounds; ++r) {
        if (threadIdx.x == 0) published[r * gridDim.x + blockIdx.x] = static_cast<int>((blockIdx.x + 1) * (r + 1));
        winnow::cuda::grid_sync();
        int sum = 0;
        for (unsigned b = 0; b < gridDim.x; ++b) sum += published[r * gridDim.x + b];
        seen[(r * gridDim.x + blockIdx.x) * blockDim.x + threadIdx.x] = sum;
    }
}

// One thread of block 1 returns instead of meeting the grid.
__global__ void grid_early_exit_kernel(int* out) {
    if (blockIdx.x == 1 && threadIdx.x == 3) return;
    winnow::cuda::grid_sync();
    out[blockIdx.x] = 1;
}

// Block 0 changes a value every block tests, with no barrier between the tests and the change: a block that tests
// after the change skips the barrier (on the device: whichever blocks run late; the grid hangs).
__global__ void grid_read_write_race_kernel(int* flag) {
    const bool meet = *flag == 0;
    if (blockIdx.x == 0 && threadIdx.x == 0) *flag = 1;
    if (meet) winnow::cuda::grid_sync();
}

TEST(SimtEmulator, CooperativeLaunchesMeetAtTheGridBarrier) {
    const int blocks = 5, threads = 64, rounds = 3;
    DeviceBuffer<int> published(blocks * rounds), seen(rounds * blocks * threads);
    winnow::cuda::launch_cooperative(grid_rounds_kernel, blocks, threads, 0, nullptr, published.p, seen.p, rounds);
    ASSERT_EQ(cudaGetLastError(), cudaSuccess);
    const std::vector<int> s = seen.read();
    for (int r = 0; r < rounds; ++r)
        for (int i = 0; i < blocks * threads; ++i) ASSERT_EQ(s[r * blocks * threads + i], (r + 1) * blocks * (blocks + 1) / 2) << "round " << r;

    // the grid barrier outside a cooperative launch, a thread that never arrives, a grid the device cannot hold at once
    DeviceBuffer<int> out(8);
#ifndef __SANITIZE_ADDRESS__ // refusals that end threads mid-kernel unwind their fibers, which ASan misreads (as for __trap)
    try {
        winnow::cuda::launch_plain(grid_early_exit_kernel, 2, 32, 0, nullptr, out.p);
        ADD_FAILURE() << "a grid barrier in an ordinary launch ran";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("not launched cooperatively"), std::string::npos) << e.what();
    }
    try {
        winnow::cuda::launch_cooperative(grid_early_exit_kernel, 2, 32, 0, nullptr, out.p);
        ADD_FAILURE() << "a grid barrier that one thread never reaches was passed";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("deadlock"), std::string::npos) << e.what();
    }
    // Between barriers the blocks run one at a time, block 0 first in the forward order, so the race shows there.
    const char* order = std::getenv("WINNOW_EMU_SCHEDULE");
    if (!order || std::string(order) == "forward") {
        try {
            winnow::cuda::launch_cooperative(grid_read_write_race_kernel, 3, 32, 0, nullptr, out.p);
            ADD_FAILURE() << "a write racing with the reads that decide whether to meet the grid went unnoticed";
        } catch (const std::runtime_error& e) {
#ifdef __SANITIZE_THREAD__ // the race detector's build (racecheck.h) names the race itself, before the deadlock it causes
            EXPECT_NE(std::string(e.what()).find("racecheck"), std::string::npos) << e.what();
#else
            EXPECT_NE(std::string(e.what()).find("deadlock"), std::string::npos) << e.what();
#endif
        }
    }
#endif
    const int limit = winnow::cuda::cooperative_grid_limit(grid_rounds_kernel, 1024, 0);
    EXPECT_EQ(limit, 2 * 132); // 2048 threads per multiprocessor
    winnow::cuda::launch_cooperative(grid_rounds_kernel, limit + 1, 1024, 0, nullptr, published.p, seen.p, 0);
    EXPECT_EQ(cudaGetLastError(), cudaErrorCooperativeLaunchTooLarge);
}

__global__ void increment_kernel(int* x) { atomicAdd(x + threadIdx.x % 4, 1); }

TEST(SimtEmulator, CapturedStreamWorkRunsOnlyWhenTheGraphIsLaunched) {
    DeviceBuffer<int> x(4);
    cudaStream_t s;
    ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
    ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed), cudaSuccess);
    winnow::cuda::launch(increment_kernel, 2, 64, 0, s, x.p);
    cudaGraph_t g;
    ASSERT_EQ(cudaStreamEndCapture(s, &g), cudaSuccess);
    EXPECT_EQ(x.read()[0], 0) << "a captured launch must not run at capture";
    cudaGraphExec_t e;
    ASSERT_EQ(cudaGraphInstantiate(&e, g, 0), cudaSuccess);
    for (int i = 0; i < 3; ++i) ASSERT_EQ(cudaGraphLaunch(e, s), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
    EXPECT_EQ(x.read(), (std::vector<int>{96, 96, 96, 96})); // 3 replays x 128 threads / 4 counters
    cudaGraphExecDestroy(e);
    cudaGraphDestroy(g);
    // a device-wide synchronisation during a capture fails and spoils it, as on the device
    ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed), cudaSuccess);
    winnow::cuda::launch(increment_kernel, 1, 32, 0, s, x.p);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorStreamCaptureUnsupported);
    EXPECT_EQ(cudaStreamEndCapture(s, &g), cudaErrorStreamCaptureInvalidated);
    (void)cudaGetLastError();
    EXPECT_EQ(x.read()[0], 96) << "the spoiled capture's launch must never run";
    cudaStreamDestroy(s);
}

} // namespace
