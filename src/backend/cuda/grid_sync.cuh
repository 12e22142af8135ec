#pragma once
// A barrier across the whole grid, for kernels launched with launch_cooperative() (launch.cuh): every thread of every
// block must call it (a thread that has returned never arrives, and the grid waits for it forever). It also orders
// memory: what any thread wrote before it is visible to every thread after it. On the device this is
// cooperative_groups' grid sync (no separate compilation needed since CUDA 11); in the SIMT emulator's build, its
// scheduler's grid barrier.
#ifdef WINNOW_CUDA_EMULATED
namespace winnow::cuda {
inline void grid_sync() { ::winnow::emu::grid_barrier(); }
} // namespace winnow::cuda
#else
#include <cooperative_groups.h>
namespace winnow::cuda {
__device__ __forceinline__ void grid_sync() { cooperative_groups::this_grid().sync(); }
} // namespace winnow::cuda
#endif
