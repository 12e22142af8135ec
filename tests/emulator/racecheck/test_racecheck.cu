// The emulator's race detector (src/backend/cuda/emulator/racecheck.h), built only with -DWINNOW_EMU_RACECHECK=ON: each
// race CUDA's rules leave open must be a launch error that names both accesses, and each order those rules give (block
// barrier, warp collective, grid barrier, fence + atomic counter) must pass, or the detector would either miss the
// kernels' races or bury them under false ones.
#include <cuda_runtime.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/cuda/grid_sync.cuh"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/shared_memory.cuh"
#include "emulator/device_buffer.h"
#include "backend/cuda/weight_access.cuh"

namespace {

using winnow::emu_test::DeviceBuffer;

// The message of the launch's error, or "" when it ran.
template <class... Params, class... Args>
std::string launch_error(bool cooperative, void (*kernel)(Params...), int blocks, int threads, Args... args) {
    try {
        if (cooperative) winnow::cuda::launch_cooperative(kernel, blocks, threads, 0, nullptr, args...);
        else winnow::cuda::launch_plain(kernel, blocks, threads, 0, nullptr, args...);
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "";
}

// Each thread writes its slot of shared memory and reads its neighbour's, with or without the barrier between.
template <bool kBarrier>
__global__ void neighbour_kernel(int* out) {
    __shared__ int slots[64];
    slots[threadIdx.x] = static_cast<int>(threadIdx.x) * 3;
    if (kBarrier) __syncthreads();
    out[threadIdx.x] = slots[(threadIdx.x + 1) % blockDim.x];
}

TEST(Racecheck, SharedMemoryReadWithoutBarrierIsReported) {
    DeviceBuffer<int> out(64);
    const std::string e = launch_error(false, neighbour_kernel<false>, 1, 64, out.p);
    EXPECT_NE(e.find("racecheck"), std::string::npos) << e;
    EXPECT_NE(e.find("a read by thread"), std::string::npos) << e;
    EXPECT_NE(e.find("a write by thread"), std::string::npos) << e;
    EXPECT_NE(e.find("shared memory"), std::string::npos) << e;
    EXPECT_NE(e.find("neighbour_kernel"), std::string::npos) << "the report names the kernel's code: " << e;

    EXPECT_EQ(launch_error(false, neighbour_kernel<true>, 1, 64, out.p), "");
    const std::vector<int> o = out.read();
    for (int i = 0; i < 64; ++i) EXPECT_EQ(o[i], (i + 1) % 64 * 3);
}

// Lane 0 writes a word that lane 1 then reads: ordered by a __syncwarp both meet, not by program order, and not by a
// shuffle or a vote (PTX promises memory ordering for bar.warp.sync only; shfl.sync and vote.sync exchange values).
template <int kSync>
__global__ void lane_handoff_kernel(int* out) {
    __shared__ int word;
    if (threadIdx.x == 0) word = 41;
    if (kSync == 1) __syncwarp();
    if (kSync == 2) (void)__shfl_sync(0xffffffffu, 0, 0);
    if (kSync == 3) (void)__ballot_sync(0xffffffffu, 1);
    if (threadIdx.x == 1) out[0] = word + 1;
}

TEST(Racecheck, OnlySyncwarpOrdersTheLanesThatMeetThere) {
    DeviceBuffer<int> out(1);
    EXPECT_NE(launch_error(false, lane_handoff_kernel<0>, 1, 32, out.p).find("racecheck"), std::string::npos);
    EXPECT_EQ(launch_error(false, lane_handoff_kernel<1>, 1, 32, out.p), "");
    EXPECT_EQ(out.read()[0], 42);
    EXPECT_NE(launch_error(false, lane_handoff_kernel<2>, 1, 32, out.p).find("racecheck"), std::string::npos) << "a shuffle orders no memory";
    EXPECT_NE(launch_error(false, lane_handoff_kernel<3>, 1, 32, out.p).find("racecheck"), std::string::npos) << "a vote orders no memory";
}

// Thread 1 writes a word and returns; thread 0 reads it after a barrier the others meet. The barrier orders only the
// threads that arrive at it, so an exited thread's last writes race with what comes after it (kExitAfterBarrier: the
// writer meets the barrier first, then returns: ordered).
template <bool kExitAfterBarrier>
__global__ void early_exit_kernel(int* out) {
    __shared__ int word;
    if (threadIdx.x == 1) {
        word = 9;
        if (kExitAfterBarrier) __syncthreads();
        return;
    }
    __syncthreads();
    if (threadIdx.x == 0) out[0] = word + 1;
}

TEST(Racecheck, AnExitedThreadIsNotOrderedByLaterBarriers) {
    DeviceBuffer<int> out(1);
    const std::string e = launch_error(false, early_exit_kernel<false>, 1, 64, out.p);
    EXPECT_NE(e.find("racecheck"), std::string::npos) << "the writer exited before the barrier: " << e;
    EXPECT_NE(e.find("a write by thread (1, 0, 0)"), std::string::npos) << e;
    EXPECT_EQ(launch_error(false, early_exit_kernel<true>, 1, 64, out.p), "");
    EXPECT_EQ(out.read()[0], 10);
}

// Lane 1 writes, meets other lanes at a __syncwarp, then returns; the others meet a barrier, then a thread that was not
// at that __syncwarp reads. On the device the write is ordered (the __syncwarp orders it before the lanes that arrive,
// the barrier orders them before everyone), so no race: kCrossWarp, thread 32 of the other warp reads after a full-warp
// __syncwarp; else lane 2 of the same warp reads after a __syncwarp of lanes 0 and 1 only. kAfterSync: lane 1 writes
// again after the __syncwarp and before it returns, which nothing orders (a race).
template <bool kCrossWarp, bool kAfterSync>
__global__ void exit_after_syncwarp_kernel(int* out) {
    __shared__ int word;
    if (threadIdx.x == 1) word = 9;
    if (kCrossWarp && threadIdx.x < 32) __syncwarp();
    if (!kCrossWarp && threadIdx.x < 2) __syncwarp(0x3u);
    if (threadIdx.x == 1) {
        if (kAfterSync) word = 10;
        return;
    }
    __syncthreads();
    if (threadIdx.x == (kCrossWarp ? 32u : 2u)) out[0] = word + 1;
}

TEST(Racecheck, ASyncwarpBeforeAnExitHandsTheLanesAccessesToTheBarrier) {
    DeviceBuffer<int> out(1);
    EXPECT_EQ(launch_error(false, exit_after_syncwarp_kernel<true, false>, 1, 64, out.p), "");
    EXPECT_EQ(out.read()[0], 10);
    EXPECT_EQ(launch_error(false, exit_after_syncwarp_kernel<false, false>, 1, 64, out.p), "");
    EXPECT_NE(launch_error(false, exit_after_syncwarp_kernel<true, true>, 1, 64, out.p).find("racecheck"), std::string::npos);
    EXPECT_NE(launch_error(false, exit_after_syncwarp_kernel<false, true>, 1, 64, out.p).find("racecheck"), std::string::npos);
}

// A collective of lanes 0-15 orders nothing for lane 16.
__global__ void half_warp_kernel(int* out) {
    __shared__ int word;
    if (threadIdx.x == 0) word = 7;
    if (threadIdx.x < 16) __syncwarp(0x0000ffffu);
    if (threadIdx.x == 16) out[0] = word;
}

TEST(Racecheck, ACollectiveOrdersOnlyItsMask) {
    DeviceBuffer<int> out(1);
    EXPECT_NE(launch_error(false, half_warp_kernel, 1, 32, out.p).find("racecheck"), std::string::npos);
}

// Block 1 reads what block 0 wrote in the same launch: nothing orders blocks of an ordinary launch.
__global__ void cross_block_kernel(int* data) {
    if (blockIdx.x == 0) data[threadIdx.x] = 5;
    else data[32 + threadIdx.x] = data[threadIdx.x];
}

TEST(Racecheck, BlocksOfOneLaunchRaceOnDeviceMemory) {
    DeviceBuffer<int> data(64);
    const std::string e = launch_error(false, cross_block_kernel, 2, 32, data.p);
    EXPECT_NE(e.find("racecheck"), std::string::npos) << e;
    EXPECT_NE(e.find("device allocation of 256 bytes"), std::string::npos) << e;
    // two launches on one stream are ordered
    winnow::cuda::launch_plain(cross_block_kernel, 1, 32, 0, nullptr, data.p);
    EXPECT_EQ(launch_error(false, cross_block_kernel, 1, 32, data.p), "");
}

// Each block publishes a partial; the last block to arrive sums them all (a fence, then the counter; and the last block
// fences again after it, as attention.cu's arrive_last): ordered. Without the counter's test, a block that sums before
// the others arrived races; without either fence, the counter orders nothing (PTX's fence-fence synchronisation).
// With kWriter = 1 another thread than the counting one writes the partial and fences before the barrier (a fence is
// cumulative, so the counting thread's fence after the barrier would release it too; the detector takes both forms).
template <bool kWaitForLast, bool kReleaseFence = true, bool kAcquireFence = true, int kWriter = 0>
__global__ void last_block_sum_kernel(int* partials, unsigned* arrived, int* total) {
    __shared__ bool last;
    if (threadIdx.x == kWriter) partials[blockIdx.x] = static_cast<int>(blockIdx.x) + 1;
    if (kWriter != 0 && threadIdx.x == kWriter) __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        if (kReleaseFence) __threadfence();
        last = atomicAdd(arrived, 1u) == gridDim.x - 1;
        if (kAcquireFence && last) __threadfence();
    }
    __syncthreads();
    if (kWaitForLast && !last) return;
    if (threadIdx.x == 0) {
        int sum = 0;
        for (unsigned b = 0; b < gridDim.x; ++b) sum += partials[b];
        if (last) *total = sum;
    }
}

TEST(Racecheck, AFenceAndAnAtomicCounterOrderTheLastBlock) {
    DeviceBuffer<int> partials(6), total(1);
    DeviceBuffer<unsigned> arrived(1);
    EXPECT_EQ(launch_error(false, last_block_sum_kernel<true>, 6, 64, partials.p, arrived.p, total.p), "");
    EXPECT_EQ(total.read()[0], 21);
    cudaMemset(arrived.p, 0, sizeof(unsigned));
    const std::string e = launch_error(false, last_block_sum_kernel<false>, 6, 64, partials.p, arrived.p, total.p);
    // in the forward order block 0 sums first, before block 1 wrote: a write after an unordered read
    EXPECT_NE(e.find("racecheck"), std::string::npos) << e;
    cudaMemset(arrived.p, 0, sizeof(unsigned));
    const std::string unreleased = launch_error(false, last_block_sum_kernel<true, false, true>, 6, 64, partials.p, arrived.p, total.p);
    EXPECT_NE(unreleased.find("racecheck"), std::string::npos) << "an atomic with no fence before it released: " << unreleased;
    cudaMemset(arrived.p, 0, sizeof(unsigned));
    const std::string unacquired = launch_error(false, last_block_sum_kernel<true, true, false>, 6, 64, partials.p, arrived.p, total.p);
    EXPECT_NE(unacquired.find("racecheck"), std::string::npos) << "an atomic with no fence after it acquired: " << unacquired;
    // every writer fences before the barrier, then one thread counts (attention.cu's arrive_last): ordered
    cudaMemset(arrived.p, 0, sizeof(unsigned));
    EXPECT_EQ(launch_error(false, last_block_sum_kernel<true, true, true, 1>, 6, 64, partials.p, arrived.p, total.p), "");
    EXPECT_EQ(total.read()[0], 21);
}

// Block b writes slot b, then (after the grid barrier, or not) reads slot b + 1.
template <bool kBarrier>
__global__ void grid_neighbour_kernel(int* slots, int* out) {
    if (threadIdx.x == 0) slots[blockIdx.x] = static_cast<int>(blockIdx.x) * 10;
    if (kBarrier) winnow::cuda::grid_sync();
    if (threadIdx.x == 0) out[blockIdx.x] = slots[(blockIdx.x + 1) % gridDim.x];
}

TEST(Racecheck, TheGridBarrierOrdersEveryBlock) {
    DeviceBuffer<int> slots(4), out(4);
    EXPECT_EQ(launch_error(true, grid_neighbour_kernel<true>, 4, 32, slots.p, out.p), "");
    const std::vector<int> o = out.read();
    for (int b = 0; b < 4; ++b) EXPECT_EQ(o[b], (b + 1) % 4 * 10);
    EXPECT_NE(launch_error(true, grid_neighbour_kernel<false>, 4, 32, slots.p, out.p).find("racecheck"), std::string::npos);
}

// Every thread reads one word (no write: no race), and neighbouring threads write neighbouring 2-byte halves of one
// word (different bytes: no race); two threads writing the same half do race.
__global__ void bytes_kernel(const int* shared_input, unsigned short* halves, int* out, int same) {
    const int v = *shared_input;
    halves[same ? 0 : threadIdx.x] = static_cast<unsigned short>(v + static_cast<int>(threadIdx.x));
    out[threadIdx.x] = v;
}

TEST(Racecheck, ReadsShareAndNeighbouringBytesDoNotRace) {
    DeviceBuffer<int> input(1), out(64);
    DeviceBuffer<unsigned short> halves(64);
    EXPECT_EQ(launch_error(false, bytes_kernel, 1, 64, static_cast<const int*>(input.p), halves.p, out.p, 0), "");
    EXPECT_NE(launch_error(false, bytes_kernel, 1, 64, static_cast<const int*>(input.p), halves.p, out.p, 1).find("racecheck"),
              std::string::npos);
}

// Dynamic shared memory is the block's own: two blocks writing the same offset of it do not race.
__global__ void dynamic_shared_kernel(int* out) {
    WINNOW_DYNAMIC_SHARED(int, buffer);
    buffer[threadIdx.x] = static_cast<int>(blockIdx.x);
    __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] = buffer[blockDim.x - 1 - threadIdx.x];
}

TEST(Racecheck, SharedMemoryIsPerBlock) {
    DeviceBuffer<int> out(3 * 32);
    try {
        winnow::cuda::launch_plain(dynamic_shared_kernel, 3, 32, 32 * sizeof(int), nullptr, out.p);
    } catch (const std::runtime_error& e) {
        ADD_FAILURE() << e.what();
    }
    const std::vector<int> o = out.read();
    for (int i = 0; i < 3 * 32; ++i) EXPECT_EQ(o[i], i / 32);
}

// The backend's block_sum twice in a row, as the layer norm calls it (mean, then variance), and a mutant without its
// first barrier: the second call's lane 0 then writes scratch while other warps may still read the first call's sums.
// No order of the plain emulator shows that (every thread reads scratch before its warp's first shuffle, long before any
// lane 0 writes again); the detector does.
__device__ float block_sum_without_first_barrier(float v, float* scratch) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
    v = winnow::cuda::warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < n_warps ? scratch[lane] : 0.0f;
    return winnow::cuda::warp_sum(v);
}

template <bool kMutant>
__global__ void two_block_sums_kernel(float* out) {
    __shared__ float scratch[32];
    const float x = static_cast<float>(threadIdx.x);
    auto sum = [&](float v) { return kMutant ? block_sum_without_first_barrier(v, scratch) : winnow::cuda::block_sum(v, scratch); };
    const float mean = sum(x) / blockDim.x;
    const float var = sum((x - mean) * (x - mean)) / blockDim.x;
    if (threadIdx.x == 0) out[0] = mean, out[1] = var;
}

TEST(Racecheck, ABlockReductionMissingItsReuseBarrierIsReported) {
    DeviceBuffer<float> out(2);
    EXPECT_EQ(launch_error(false, two_block_sums_kernel<false>, 1, 256, out.p), "");
    const std::vector<float> o = out.read();
    EXPECT_EQ(o[0], 127.5f);
    EXPECT_EQ(o[1], (256.0f * 256.0f - 1.0f) / 12.0f);
    const std::string e = launch_error(false, two_block_sums_kernel<true>, 1, 256, out.p);
    EXPECT_NE(e.find("racecheck"), std::string::npos) << e;
    EXPECT_NE(e.find("block_sum_without_first_barrier"), std::string::npos) << e;
}

} // namespace
