#pragma once
// How the CUDA backend launches the kernels of a decode step: with Programmatic Dependent Launch (PDL, sm_90+) where
// the device has it and WINNOW_CUDA_PDL is not 0 (launch_logic.h), else exactly as <<<grid, block, shared, s>>> does.
//
// With PDL a kernel is launched with cudaLaunchAttributeProgrammaticStreamSerialization: it may start (its blocks
// scheduled, its prologue run) once every block of the kernel before it in the stream has called
// pdl_launch_dependents() or exited, instead of when that kernel has finished. What it may not do before
// pdl_wait() returns is touch global memory: the wait returns once the previous kernel has finished and its writes
// are visible. So every kernel launched through launch() must begin with
//     pdl_wait();              // the very first statement: before any global read or write and any early return
//     pdl_launch_dependents(); // then let the next kernel's launch overlap this one's body
// (or with pdl_wait_prefetching(on, weight rows), below: a wait that first asks L2 for weights, which no kernel writes).
// A kernel that skipped the wait could finish before its predecessor, and the next kernel's wait (which waits for its
// immediate predecessor only) would no longer imply that the earlier kernels had finished: waiting first in every
// kernel keeps the ordinary stream order, kernel after kernel, while the next launch's latency and block scheduling
// overlap the current kernel. tests/lint/pdl_wait_first.py checks the rule on every kernel passed to launch() (ctest
// lint.pdl_wait_first). Without the attribute (PDL off, or an ordinary <<<>>> launch) the two calls do nothing.
//
// An ordinary launch, a copy or a cuBLAS call after a PDL kernel waits for it to finish, as usual; a PDL kernel after
// one of those waits in pdl_wait() for it. Stream capture (the recorded decode step, cuda_backend.cu) turns the
// attribute into programmatic graph edges (CUDA 12.3 and later), so the same launches serve eager steps and recordings.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cuda_runtime.h>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/launch_logic.h"
#include "winnow/error.h"

namespace winnow::cuda {

// griddepcontrol (PTX ISA 7.8, sm_90): a no-op in a kernel launched without the PDL attribute, and not compiled
// below sm_90.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;");
#endif
}

// A weight range that a warp will read: memory that no kernel of a step writes, which is why it may be touched before
// pdl_wait() (nothing before the wait may read what the previous kernels write).
struct WeightBytes {
    const uint8_t* p = nullptr; // none when null
    size_t n = 0;
};

// Asks L2 for the 128-byte lines of up to two weight ranges, a warp's lanes taking the lines in turn: reads nothing into
// registers, and names only lines inside the ranges.
__device__ __forceinline__ void prefetch_weights_l2(WeightBytes a, WeightBytes b = {}) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    const uintptr_t lane_line = 128u * (threadIdx.x % 32);
    for (const WeightBytes w : {a, b}) {
        if (!w.p || w.n == 0) continue;
        const uintptr_t begin = reinterpret_cast<uintptr_t>(w.p), end = begin + w.n;
        for (uintptr_t line = (begin & ~uintptr_t{127}) + lane_line; line < end; line += 128u * 32)
            asm volatile("prefetch.global.L2 [%0];" ::"l"(line < begin ? begin : line));
    }
#else
    (void)a, (void)b;
#endif
}

// pdl_wait(), after asking L2 (when `on`) for up to two weight ranges (prefetch_weights_l2, above). With PDL a
// kernel's blocks start while the previous kernel still runs (pdl_launch_dependents), so its weights' DRAM latency,
// which every batch-1 GEMV otherwise pays after the wait, overlaps the previous kernel. A kernel may begin with this
// call instead of pdl_wait() (tests/lint/pdl_wait_first.py), its arguments computed from its parameters and built-in
// indices only.
__device__ __forceinline__ void pdl_wait_prefetching(bool on, WeightBytes a, WeightBytes b = {}) {
    if (on) prefetch_weights_l2(a, b);
    pdl_wait();
}

// Whether launches on the current device use PDL: its compute capability and WINNOW_CUDA_PDL, read once per device.
inline bool pdl_enabled() {
    constexpr int kDevices = 64;
    static std::atomic<int> state[kDevices] = {}; // 0: not asked yet, 1: off, 2: on
    int device = 0;
    WINNOW_CUDA_CHECK(cudaGetDevice(&device));
    std::atomic<int>* slot = device >= 0 && device < kDevices ? &state[device] : nullptr;
    if (slot && slot->load() != 0) return slot->load() == 2;
    int major = 0;
    WINNOW_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    const bool on = pdl_wanted(major, std::getenv("WINNOW_CUDA_PDL"));
    if (slot) slot->store(on ? 2 : 1);
    return on;
}

// Whether the GEMV kernels prefetch their weights before their wait (launch_logic.h): PDL on and WINNOW_CUDA_PREFETCH
// not 0, read once.
inline bool weight_prefetch_enabled() {
    static const bool wanted = weight_prefetch_wanted(true, std::getenv("WINNOW_CUDA_PREFETCH"));
    return wanted && pdl_enabled();
}

#ifdef WINNOW_CUDA_EMULATED
// The SIMT emulator's build (emulator/simt.h): every launch runs on the emulator, which has no PDL to ask for (its
// kernels run one after another, as PDL's pdl_wait() makes them).
template <class... Params, class... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, cudaStream_t s, Args&&... args) {
    emu::launch_on_emulator(false, kernel, grid, block, shared, s, std::forward<Args>(args)...);
}
template <class... Params, class... Args>
void launch_plain(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, cudaStream_t s, Args&&... args) {
    emu::launch_on_emulator(false, kernel, grid, block, shared, s, std::forward<Args>(args)...);
}
template <class... Params, class... Args>
void launch_cooperative(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, cudaStream_t s, Args&&... args) {
    emu::launch_on_emulator(true, kernel, grid, block, shared, s, std::forward<Args>(args)...);
}
template <class... Params, class... Args>
void launch_cooperative_recordable(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, cudaStream_t s, Args&&... args) {
    emu::launch_on_emulator(true, kernel, grid, block, shared, s, std::forward<Args>(args)...);
}
#else
// kernel<<<grid, block, shared, s>>>(args...), with the PDL attribute when pdl_enabled(). The kernel must begin with
// pdl_wait() (above). The callers check cudaGetLastError() after it, as after any <<<>>> launch; a failed
// cudaLaunchKernelEx throws here, its error cleared from the last-error slot first (or the callers' check, or the next
// op's, would report it a second time).
// cudaLaunchKernelEx with one launch attribute; a refused launch throws (naming `what`), its error cleared from the
// last-error slot first.
template <class... Params, class... Args>
void launch_with_attribute(const cudaLaunchAttribute& attribute, const char* what, void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared,
                           cudaStream_t s, Args&&... args) {
    cudaLaunchAttribute attr[1] = {attribute};
    cudaLaunchConfig_t config = {};
    config.gridDim = grid;
    config.blockDim = block;
    config.dynamicSmemBytes = shared;
    config.stream = s;
    config.attrs = attr;
    config.numAttrs = 1;
    const cudaError_t err = cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        throw Error(ErrorKind::io, std::string("cudaLaunchKernelEx (") + what + ") failed: " + cudaGetErrorString(err));
    }
}

template <class... Params, class... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, cudaStream_t s, Args&&... args) {
    if (!pdl_enabled()) {
        kernel<<<grid, block, shared, s>>>(std::forward<Args>(args)...);
        return;
    }
    cudaLaunchAttribute attr = {};
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = 1;
    launch_with_attribute(attr, "programmatic dependent launch", kernel, grid, block, shared, s, std::forward<Args>(args)...);
}

// kernel<<<grid, block, shared, s>>>(args...): for the kernels that are not launched with PDL (they need not begin with
// pdl_wait()); one spelling of a launch for nvcc and the emulator's build alike.
template <class... Params, class... Args>
void launch_plain(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, cudaStream_t s, Args&&... args) {
    kernel<<<grid, block, shared, s>>>(std::forward<Args>(args)...);
}

// cudaLaunchCooperativeKernel: every block of the grid resident at once, so the kernel may call grid_sync()
// (grid_sync.cuh). The grid must not exceed what the device holds at once (cooperative_grid_limit()); the error a
// refused launch returns is left for the caller's cudaGetLastError(), as a <<<>>> launch leaves it.
template <class... Params, class... Args>
void launch_cooperative(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, cudaStream_t s, Args&&... args) {
    static_assert(sizeof...(Params) == sizeof...(Args), "a kernel launch passes one argument per parameter");
    std::tuple<std::decay_t<Params>...> values(std::forward<Args>(args)...); // converted as a launch converts them
    std::apply([&](auto&... v) {
        void* pointers[sizeof...(Params) + 1] = {static_cast<void*>(&v)...};
        (void)cudaLaunchCooperativeKernel(reinterpret_cast<const void*>(kernel), grid, block, pointers, shared, s);
    }, values);
}

// launch_cooperative's launch through cudaLaunchKernelEx with cudaLaunchAttributeCooperative, the spelling that stream
// capture turns into a cooperative kernel node of a CUDA graph (the step program of a recorded decode step). A refused
// launch throws (launch_with_attribute).
template <class... Params, class... Args>
void launch_cooperative_recordable(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, cudaStream_t s, Args&&... args) {
    cudaLaunchAttribute attr = {};
    attr.id = cudaLaunchAttributeCooperative;
    attr.val.cooperative = 1;
    launch_with_attribute(attr, "cooperative", kernel, grid, block, shared, s, std::forward<Args>(args)...);
}
#endif

// The largest grid of `kernel` with `threads` per block and `shared` dynamic bytes that a cooperative launch accepts on
// the current device: blocks per multiprocessor (the occupancy calculator) times multiprocessors. 0 when the device
// cannot launch cooperatively.
template <class... Params>
int cooperative_grid_limit(void (*kernel)(Params...), int threads, size_t shared) {
    int device = 0, cooperative = 0, sms = 0, per_sm = 0;
    WINNOW_CUDA_CHECK(cudaGetDevice(&device));
    WINNOW_CUDA_CHECK(cudaDeviceGetAttribute(&cooperative, cudaDevAttrCooperativeLaunch, device));
    if (!cooperative) return 0;
    WINNOW_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    WINNOW_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, shared));
    return per_sm * sms;
}

} // namespace winnow::cuda
