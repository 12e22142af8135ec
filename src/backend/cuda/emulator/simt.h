#pragma once
// The device side of winnow's SIMT emulator: what a .cu file of the CUDA backend needs from the CUDA compiler, for a
// build that compiles those files with the host C++ compiler and runs their kernels on the CPU
// (-DWINNOW_CUDA_EMULATOR=ON; CMake force-includes this header into every .cu file of that build).
//
// Why: most sessions of this project have no GPU, and a kernel that has never run is a kernel whose indexing, barriers
// and shuffles nobody has checked. The emulator runs every GPU thread of a block as a fiber (scheduler.cpp) and
// switches only at the points where CUDA threads meet: __syncthreads() and its variants, the warp shuffles, votes and
// __syncwarp. So the tests written for the GPU (tests/gpu, the op harness's cuda cases) run on any machine and compare
// the kernels with their CPU twins. It checks the meeting points strictly, where a GPU would be undefined or hang: a
// shuffle naming a lane that exited or sits elsewhere, a barrier some threads never reach, a block of more than 1024
// threads, dynamic shared memory above what the kernel opted into, a pointer argument that is not device memory, a
// global-memory load (__ldg, __ldcg, ...) of shared memory.
//
// What it does not show: speed (nothing here is timed meaningfully), the memory model (blocks run one after another and
// threads of a block switch only at the meeting points, so a race shows only as an order dependence:
// WINNOW_EMU_SCHEDULE=reverse or shuffle runs the threads between meeting points, and the blocks, in another order;
// the race detector's build, racecheck.h, reports every unordered pair of accesses it sees instead), and the bits of the
// device's own math library (expf and the like are the host's, within a few ulp of CUDA's). A GPU run stays the proof;
// the emulator makes it likelier to pass the first time.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <bit>
#include <cmath>
#include <math.h> // isnan, isinf and the rest unqualified, as device code calls them
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#ifndef WINNOW_CUDA_EMULATED
#define WINNOW_CUDA_EMULATED 1
#endif

// Shared memory is per block. The emulator runs one block at a time in the whole process (launches from several host
// threads take turns), and the threads of a block are fibers of one host thread, so a function-local static is exactly
// the running block's shared variable.
#undef __shared__
#define __shared__ static
#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif
#ifndef __grid_constant__
#define __grid_constant__
#endif

namespace winnow::emu {

// The running GPU thread's coordinates: the scheduler sets them before it resumes a thread.
struct Coordinates {
    uint3 thread_idx{0, 0, 0};
    uint3 block_idx{0, 0, 0};
    dim3 block_dim{1, 1, 1};
    dim3 grid_dim{1, 1, 1};
};
extern Coordinates g_coordinates; // one block runs at a time (scheduler.cpp), so one set

// The meeting points (scheduler.cpp). A warp collective gives each lane in `mask` the value of its lane `source`; a
// vote gives the OR of (predicate << lane) over the mask; a match gives each lane the lanes of the mask whose value
// equals its own (__match_any_sync: one meeting, where a shuffle from each lane would be 32).
enum class Collective : uint8_t { shuffle, vote, sync, match };
uint64_t warp_collective(Collective kind, unsigned mask, uint64_t value, int source);
int block_barrier(int predicate, bool count); // count: the number of threads with a non-zero predicate; else their AND
// cooperative_groups::this_grid().sync(): every thread of a cooperative launch meets here (grid_sync.cuh).
void grid_barrier();
unsigned char* dynamic_shared();
int lane_id();
[[noreturn]] void trap();
// An atomic operation at p, and a __threadfence(), by the running thread, for the race detector (racecheck.cpp): called
// only in its build.
void atomic_sync(const void* p);
void fence_sync();

// A kernel launch: body() is run once per thread of every block. kernel names the kernel for the opted-in shared
// memory and in messages. cooperative: cudaLaunchCooperativeKernel's launch, whose blocks all run together (a grid of
// at most the blocks the device holds at once), so that grid_barrier() can be met.
void launch_kernel(const void* kernel, dim3 grid, dim3 block, size_t shared, cudaStream_t stream, std::function<void()> body,
                   bool cooperative = false);
// Whether p lies in memory that cudaMalloc or cudaMallocHost returned (a device may read pinned host memory).
bool is_device_accessible(const void* p);
[[noreturn]] void bad_pointer_argument(const void* kernel, int index, const void* p);

template <class T>
void check_argument(const void* kernel, int index, const T& value) {
    if constexpr (std::is_pointer_v<T> && !std::is_function_v<std::remove_pointer_t<T>>) {
        if (value != nullptr && !is_device_accessible(value)) bad_pointer_argument(kernel, index, value);
    }
}

// kernel<<<grid, block, shared, stream>>>(args...): the arguments converted to the parameters' types as a launch
// converts them, copied once, and passed to every thread.
template <class... Params, class... Args>
void launch_on_emulator(bool cooperative, void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, cudaStream_t stream, Args&&... args) {
    static_assert(sizeof...(Params) == sizeof...(Args), "a kernel launch passes one argument per parameter");
    auto params = std::make_shared<std::tuple<std::decay_t<Params>...>>(std::forward<Args>(args)...);
    const void* id = reinterpret_cast<const void*>(kernel);
    std::apply([&](const auto&... p) {
        int i = 0;
        (check_argument(id, i++, p), ...);
    }, *params);
    launch_kernel(id, grid, block, shared, stream, [kernel, params] { std::apply(kernel, *params); }, cooperative);
}

template <class T>
T exchange(unsigned mask, T value, int source) {
    static_assert(sizeof(T) <= sizeof(uint64_t) && std::is_trivially_copyable_v<T>, "a shuffle moves at most 8 bytes");
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof value);
    bits = warp_collective(Collective::shuffle, mask, bits, source);
    T out;
    std::memcpy(&out, &bits, sizeof out);
    return out;
}

} // namespace winnow::emu

#define threadIdx (::winnow::emu::g_coordinates.thread_idx)
#define blockIdx (::winnow::emu::g_coordinates.block_idx)
#define blockDim (::winnow::emu::g_coordinates.block_dim)
#define gridDim (::winnow::emu::g_coordinates.grid_dim)
constexpr int warpSize = 32;

// --- barriers, shuffles, votes ---
inline void __syncthreads() { ::winnow::emu::block_barrier(1, false); }
inline int __syncthreads_count(int p) { return ::winnow::emu::block_barrier(p, true); }
inline int __syncthreads_and(int p) { return ::winnow::emu::block_barrier(p, false); }
inline int __syncthreads_or(int p) { return ::winnow::emu::block_barrier(p, true) != 0; }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    ::winnow::emu::warp_collective(::winnow::emu::Collective::sync, mask, 0, ::winnow::emu::lane_id());
}
inline unsigned __ballot_sync(unsigned mask, int p) {
    return static_cast<unsigned>(::winnow::emu::warp_collective(::winnow::emu::Collective::vote, mask, p != 0, ::winnow::emu::lane_id()));
}
// The lanes of `mask` whose value equals this lane's, in one meeting of the mask's lanes (every lane of the mask must
// call it, as on the device).
template <class T>
unsigned __match_any_sync(unsigned mask, T value) {
    static_assert((std::is_integral_v<T> || std::is_floating_point_v<T>) && (sizeof(T) == 4 || sizeof(T) == 8),
                  "__match_any_sync takes a 32- or 64-bit integer or float");
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof value); // compared as bits, as the device compares
    return static_cast<unsigned>(::winnow::emu::warp_collective(::winnow::emu::Collective::match, mask, bits, ::winnow::emu::lane_id()));
}
inline int __any_sync(unsigned mask, int p) { return __ballot_sync(mask, p) != 0; }
inline int __all_sync(unsigned mask, int p) { return (__ballot_sync(mask, p) & mask) == mask; }

// The source lanes as the CUDA Programming Guide defines them for a warp split in segments of `width` lanes (a power of
// two up to 32); lane masks and deltas are taken modulo 32, as the shfl instruction reads 5 bits of them.
template <class T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    const int lane = ::winnow::emu::lane_id();
    return ::winnow::emu::exchange(mask, v, (lane & ~(width - 1)) + (src & (width - 1)));
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    const int lane = ::winnow::emu::lane_id(), src = lane ^ (lane_mask & 31);
    return ::winnow::emu::exchange(mask, v, src >= (lane & ~(width - 1)) + width ? lane : src);
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    const int lane = ::winnow::emu::lane_id();
    delta &= 31;
    return ::winnow::emu::exchange(mask, v, (lane & (width - 1)) < static_cast<int>(delta) ? lane : lane - static_cast<int>(delta));
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    const int lane = ::winnow::emu::lane_id();
    delta &= 31;
    return ::winnow::emu::exchange(mask, v, (lane & (width - 1)) + static_cast<int>(delta) >= width ? lane : lane + static_cast<int>(delta));
}

// --- atomics: the threads of the emulator never run at the same time, so a read-modify-write is atomic. In a racecheck
// build (racecheck.h) their own loads and stores are not instrumented, and each tells the detector of the release and
// acquire it stands for ---
#ifdef __SANITIZE_THREAD__
#define WINNOW_EMU_ATOMIC_ATTRIBUTES __attribute__((no_sanitize_thread, noinline))
#define WINNOW_EMU_ATOMIC_SYNC(p) ::winnow::emu::atomic_sync(p)
#else
#define WINNOW_EMU_ATOMIC_ATTRIBUTES
#define WINNOW_EMU_ATOMIC_SYNC(p) ((void)0)
#endif
#define WINNOW_EMU_ATOMIC template <class T, class U> WINNOW_EMU_ATOMIC_ATTRIBUTES
WINNOW_EMU_ATOMIC T atomicAdd(T* p, U v) { WINNOW_EMU_ATOMIC_SYNC(p); const T old = *p; *p = static_cast<T>(old + static_cast<T>(v)); return old; }
WINNOW_EMU_ATOMIC T atomicSub(T* p, U v) { WINNOW_EMU_ATOMIC_SYNC(p); const T old = *p; *p = static_cast<T>(old - static_cast<T>(v)); return old; }
WINNOW_EMU_ATOMIC T atomicMin(T* p, U v) { WINNOW_EMU_ATOMIC_SYNC(p); const T old = *p; if (static_cast<T>(v) < old) *p = static_cast<T>(v); return old; }
WINNOW_EMU_ATOMIC T atomicMax(T* p, U v) { WINNOW_EMU_ATOMIC_SYNC(p); const T old = *p; if (static_cast<T>(v) > old) *p = static_cast<T>(v); return old; }
WINNOW_EMU_ATOMIC T atomicAnd(T* p, U v) { WINNOW_EMU_ATOMIC_SYNC(p); const T old = *p; *p = old & static_cast<T>(v); return old; }
WINNOW_EMU_ATOMIC T atomicOr(T* p, U v) { WINNOW_EMU_ATOMIC_SYNC(p); const T old = *p; *p = old | static_cast<T>(v); return old; }
WINNOW_EMU_ATOMIC T atomicExch(T* p, U v) { WINNOW_EMU_ATOMIC_SYNC(p); const T old = *p; *p = static_cast<T>(v); return old; }
template <class T, class U, class V> WINNOW_EMU_ATOMIC_ATTRIBUTES
T atomicCAS(T* p, U compare, V v) { WINNOW_EMU_ATOMIC_SYNC(p); const T old = *p; if (old == static_cast<T>(compare)) *p = static_cast<T>(v); return old; }
#undef WINNOW_EMU_ATOMIC
#undef WINNOW_EMU_ATOMIC_ATTRIBUTES
#undef WINNOW_EMU_ATOMIC_SYNC
#ifdef __SANITIZE_THREAD__
inline void __threadfence() { ::winnow::emu::fence_sync(); }
#else
inline void __threadfence() {}
#endif
inline void __threadfence_block() {}

// --- loads with cache hints: plain loads of global memory. The device takes their address as a global one, so a
// pointer into shared memory (a staged slice read with __ldg instead of a plain load) reads other bytes or faults there;
// the emulator refuses such a load (and one of host static storage) as a launch error ---
namespace winnow::emu {
bool outside_global_memory(const void* p); // the block's shared memory (static or dynamic), or the program's statics
[[noreturn]] void global_load_outside_global_memory(const void* p);
template <class T>
const T* global_address(const T* p) {
    if (outside_global_memory(p)) global_load_outside_global_memory(p);
    return p;
}
} // namespace winnow::emu
template <class T> T __ldg(const T* p) { return *::winnow::emu::global_address(p); }
template <class T> T __ldcg(const T* p) { return *::winnow::emu::global_address(p); }
template <class T> T __ldca(const T* p) { return *::winnow::emu::global_address(p); }
template <class T> T __ldcs(const T* p) { return *::winnow::emu::global_address(p); }
template <class T> T __ldlu(const T* p) { return *::winnow::emu::global_address(p); }

// --- arithmetic with a named rounding: the build compiles these files with -ffp-contract=off, so each is one IEEE
// operation rounded to nearest, as on the device ---
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dsqrt_rn(double a) { return std::sqrt(a); }
inline float rsqrtf(float a) { return 1.0f / std::sqrt(a); }
inline float __saturatef(float a) { return a > 0.0f ? (a > 1.0f ? 1.0f : a) : 0.0f; } // NaN -> 0, as on the device

// --- bits ---
inline float __int_as_float(int v) { return std::bit_cast<float>(v); }
inline int __float_as_int(float v) { return std::bit_cast<int>(v); }
inline float __uint_as_float(unsigned v) { return std::bit_cast<float>(v); }
inline unsigned __float_as_uint(float v) { return std::bit_cast<unsigned>(v); }
inline int __popc(unsigned v) { return std::popcount(v); }
inline int __popcll(unsigned long long v) { return std::popcount(v); }
inline int __ffs(int v) { return __builtin_ffs(v); }
inline int __ffsll(long long v) { return __builtin_ffsll(v); }
inline int __clz(int v) { return v == 0 ? 32 : __builtin_clz(static_cast<unsigned>(v)); }
inline unsigned __brev(unsigned v) {
    v = ((v >> 1) & 0x55555555u) | ((v & 0x55555555u) << 1);
    v = ((v >> 2) & 0x33333333u) | ((v & 0x33333333u) << 2);
    v = ((v >> 4) & 0x0f0f0f0fu) | ((v & 0x0f0f0f0fu) << 4);
    v = ((v >> 8) & 0x00ff00ffu) | ((v & 0x00ff00ffu) << 8);
    return (v >> 16) | (v << 16);
}
[[noreturn]] inline void __trap() { ::winnow::emu::trap(); }

// The CUDA headers give the device's min / max overloads only to nvcc.
#define WINNOW_EMU_MIN_MAX(T) \
    inline T min(T a, T b) { return a < b ? a : b; } \
    inline T max(T a, T b) { return a > b ? a : b; }
WINNOW_EMU_MIN_MAX(int)
WINNOW_EMU_MIN_MAX(unsigned)
WINNOW_EMU_MIN_MAX(long)
WINNOW_EMU_MIN_MAX(unsigned long)
WINNOW_EMU_MIN_MAX(long long)
WINNOW_EMU_MIN_MAX(unsigned long long)
#undef WINNOW_EMU_MIN_MAX
// the floating-point ones are fminf / fmaxf on the device: a NaN loses to a number
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }

// cuda_runtime.h's overloads for a kernel pointer are nvcc's only.
template <class F, class = std::enable_if_t<std::is_function_v<F>>>
cudaError_t cudaFuncSetAttribute(F* kernel, cudaFuncAttribute attr, int value) {
    return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), attr, value);
}
template <class F, class = std::enable_if_t<std::is_function_v<F>>>
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, F* kernel, int block_size, size_t shared) {
    return ::cudaOccupancyMaxActiveBlocksPerMultiprocessor(blocks, reinterpret_cast<const void*>(kernel), block_size, shared);
}
