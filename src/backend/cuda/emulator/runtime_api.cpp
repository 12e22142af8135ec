// The part of the CUDA runtime API the CUDA backend calls, for the SIMT emulator's build (simt.h): one emulated device
// whose memory is host memory, streams that run their work at once (or record it while captured into a graph), events
// that read the host clock, and kernel launches that check their configuration as the device does before the scheduler
// (scheduler.cpp) runs them. Errors follow the runtime's rules: a call returns its error and leaves it for
// cudaGetLastError; a launch's error is left there alone.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/cuda/emulator/emulator.h"
#include "backend/cuda/emulator/simt.h"

// The runtime's opaque handles, defined here.
struct CUstream_st {
    bool capturing = false;
    std::vector<std::function<void()>> recorded;
};
struct CUgraph_st {
    std::vector<std::function<void()>> work;
};
struct CUgraphExec_st {
    std::vector<std::function<void()>> work;
};
struct CUevent_st {
    std::chrono::steady_clock::time_point at{};
    bool recorded = false;
};

namespace winnow::emu {
namespace {

constexpr int kSharedDefault = 48 * 1024;     // dynamic shared memory a kernel gets without opting in
constexpr int kSharedOptinMax = 227 * 1024;   // sm_90's ceiling per block
constexpr size_t kGlobalMemory = 141ull << 30; // an H200's, for what the backend asks

struct State {
    std::mutex mutex;
    std::map<const char*, size_t> allocations; // base -> bytes: cudaMalloc and cudaMallocHost
    std::map<const void*, int> shared_optin;   // kernel -> its MaxDynamicSharedMemorySize
    cudaError_t last_error = cudaSuccess;
    CUstream_st default_stream;
};

State& state() {
    static State s;
    return s;
}

cudaError_t fail(cudaError_t e) {
    state().last_error = e;
    return e;
}

CUstream_st* resolve(cudaStream_t s) {
    return (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) ? &state().default_stream : s;
}

// cudaMalloc's 256-byte alignment, and exactly the bytes asked for: under ASan (scripts/test-emulated.sh --asan) a
// kernel's read one element past its buffer is a report, as under compute-sanitizer, which also tracks exact sizes.
void* allocate(size_t bytes) {
    void* p = nullptr;
    if (posix_memalign(&p, 256, std::max<size_t>(bytes, 1)) != 0) return nullptr;
    std::memset(p, 0xa5, bytes); // not zeros: a kernel that reads memory nobody wrote must not get lucky
    std::lock_guard lock(state().mutex);
    state().allocations[static_cast<const char*>(p)] = bytes;
    return p;
}

bool release(void* p) {
    if (!p) return true;
    {
        std::lock_guard lock(state().mutex);
        auto it = state().allocations.find(static_cast<const char*>(p));
        if (it == state().allocations.end()) return false;
        state().allocations.erase(it);
    }
    std::free(p);
    return true;
}

} // namespace

namespace {
// The allocation that begins at or below p, as [base, end); {nullptr, nullptr} when none does. The caller checks p's
// place in it.
std::pair<const char*, const char*> allocation_below(const void* p) {
    std::lock_guard lock(state().mutex);
    auto it = state().allocations.upper_bound(static_cast<const char*>(p));
    if (it == state().allocations.begin()) return {nullptr, nullptr};
    --it;
    return {it->first, it->first + it->second};
}
} // namespace

bool is_device_range(const void* p, size_t bytes) {
    const auto [base, end] = allocation_below(p);
    const char* c = static_cast<const char*>(p);
    return base && c + bytes <= end;
}

std::vector<std::pair<const char*, const char*>> device_allocations() {
    std::lock_guard lock(state().mutex);
    std::vector<std::pair<const char*, const char*>> out;
    out.reserve(state().allocations.size());
    for (const auto& [base, bytes] : state().allocations) out.emplace_back(base, base + bytes);
    return out;
}

bool is_device_accessible(const void* p) {
    const auto [base, end] = allocation_below(p);
    return base && static_cast<const char*>(p) <= end; // one past the end is a valid pointer too
}

void bad_pointer_argument(const void* kernel, int index, const void* p) {
    char buf[200];
    std::snprintf(buf, sizeof buf, "SIMT emulator: kernel %p: argument %d (%p) is a pointer outside every device allocation", kernel, index, p);
    throw std::runtime_error(buf);
}

void enqueue(cudaStream_t stream, std::function<void()> work) {
    CUstream_st* s = resolve(stream);
    if (s->capturing) s->recorded.push_back(std::move(work));
    else work();
}

// Blocks of `threads` threads and `shared` dynamic bytes that one multiprocessor holds at once, by sm_90's limits:
// 2048 threads, 32 blocks, 228 KiB of shared memory (1 KiB of it reserved per block). Registers are not counted: the
// emulator does not know a kernel's, so a GPU may hold fewer.
int blocks_per_multiprocessor(unsigned long long threads, size_t shared) {
    if (threads == 0 || threads > 1024) return 0;
    const unsigned long long by_threads = 2048 / threads, by_shared = (228ull * 1024) / (shared + 1024);
    return static_cast<int>(std::min<unsigned long long>({32, by_threads, by_shared}));
}
constexpr int kMultiprocessors = 132; // an H200's

void launch_kernel(const void* kernel, dim3 grid, dim3 block, size_t shared, cudaStream_t stream, std::function<void()> body, bool cooperative) {
    const unsigned long long threads = 1ull * block.x * block.y * block.z;
    if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535) {
        fail(cudaErrorInvalidConfiguration);
        return;
    }
    int allowed = kSharedDefault;
    {
        std::lock_guard lock(state().mutex);
        auto it = state().shared_optin.find(kernel);
        if (it != state().shared_optin.end()) allowed = std::max(allowed, it->second);
    }
    if (shared > static_cast<size_t>(allowed)) {
        fail(cudaErrorInvalidValue); // the device refuses: more dynamic shared memory than the kernel opted into
        return;
    }
    if (cooperative && 1ull * grid.x * grid.y * grid.z > 1ull * kMultiprocessors * blocks_per_multiprocessor(threads, shared)) {
        fail(cudaErrorCooperativeLaunchTooLarge); // the device refuses a grid it cannot hold at once
        return;
    }
    enqueue(stream, [grid, block, shared, cooperative, body = std::move(body)] { run_grid(grid, block, shared, body, cooperative); });
}

} // namespace winnow::emu

using namespace winnow::emu;

namespace {
int g_capturing = 0;            // streams capturing now
bool g_capture_spoiled = false; // an illegal call happened during the capture
} // namespace

extern "C" {

cudaError_t cudaGetLastError(void) {
    const cudaError_t e = state().last_error;
    state().last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) { return state().last_error; }

const char* cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorCooperativeLaunchTooLarge: return "cudaErrorCooperativeLaunchTooLarge";
    default: return "cudaErrorUnknown";
    }
}
const char* cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorCooperativeLaunchTooLarge: return "too many blocks in cooperative launch";
    default: return "unknown error (SIMT emulator)";
    }
}

cudaError_t cudaGetDeviceCount(int* count) {
    *count = 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); }
cudaError_t cudaGetDevice(int* device) {
    *device = 0;
    return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
    *v = CUDART_VERSION;
    return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) {
    *v = CUDART_VERSION;
    return cudaSuccess;
}

// The name says what this is wherever the backend prints it (winnow info, bench reports): not a GPU.
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
    if (device != 0) return fail(cudaErrorInvalidDevice);
    *p = cudaDeviceProp{};
    std::snprintf(p->name, sizeof p->name, "winnow SIMT emulator (CPU, not a GPU)");
    p->major = 9, p->minor = 0;
    p->totalGlobalMem = kGlobalMemory;
    p->sharedMemPerBlock = kSharedDefault;
    p->sharedMemPerBlockOptin = kSharedOptinMax;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = p->maxThreadsDim[1] = 1024, p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 0x7fffffff, p->maxGridSize[1] = p->maxGridSize[2] = 65535;
    p->multiProcessorCount = kMultiprocessors;
    p->l2CacheSize = 60 << 20;
    p->memoryBusWidth = 6144;
    p->regsPerBlock = 65536;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
    if (device != 0) return fail(cudaErrorInvalidDevice);
    switch (attr) {
    case cudaDevAttrComputeCapabilityMajor: *value = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = kSharedOptinMax; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = kSharedDefault; break;
    case cudaDevAttrMultiProcessorCount: *value = kMultiprocessors; break;
    case cudaDevAttrCooperativeLaunch: *value = 1; break;
    case cudaDevAttrWarpSize: *value = 32; break;
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
    default: return fail(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, const void*, int block_size, size_t shared) {
    if (block_size <= 0) return fail(cudaErrorInvalidValue);
    *blocks = blocks_per_multiprocessor(static_cast<unsigned long long>(block_size), shared);
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
    *free_bytes = *total = kGlobalMemory;
    return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;
    if (value < 0 || value > kSharedOptinMax) return fail(cudaErrorInvalidValue);
    std::lock_guard lock(state().mutex);
    state().shared_optin[func] = value;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
    *p = allocate(bytes);
    return *p ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}
cudaError_t cudaMallocHost(void** p, size_t bytes) { return cudaMalloc(p, bytes); }
cudaError_t cudaFree(void* p) { return release(p) ? cudaSuccess : fail(cudaErrorInvalidValue); }
cudaError_t cudaFreeHost(void* p) { return cudaFree(p); }

// A copy's device side must lie inside one allocation (the device faults otherwise); host sides cannot be checked.
static cudaError_t check_copy(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
    if (n == 0) return cudaSuccess;
    const bool dst_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    const bool src_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if ((dst_device && !is_device_range(dst, n)) || (src_device && !is_device_range(src, n))) return fail(cudaErrorInvalidValue);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
    if (const cudaError_t e = check_copy(dst, src, n, kind)) return e;
    if (n) std::memmove(dst, src, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind, cudaStream_t s) {
    if (const cudaError_t e = check_copy(dst, src, n, kind)) return e;
    if (n) enqueue(s, [=] { std::memmove(dst, src, n); });
    return cudaSuccess;
}
cudaError_t cudaMemset(void* p, int v, size_t n) {
    if (n && !is_device_range(p, n)) return fail(cudaErrorInvalidValue);
    if (n) std::memset(p, v, n);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t s) {
    if (n && !is_device_range(p, n)) return fail(cudaErrorInvalidValue);
    if (n) enqueue(s, [=] { std::memset(p, v, n); });
    return cudaSuccess;
}

// A device-wide synchronisation is illegal while a stream captures: it fails and spoils the capture, as on the device.
cudaError_t cudaDeviceSynchronize(void) {
    if (g_capturing) {
        g_capture_spoiled = true;
        return fail(cudaErrorStreamCaptureUnsupported);
    }
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int) {
    *s = new CUstream_st;
    return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    if (resolve(s) != &state().default_stream) delete s;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    if (resolve(s)->capturing) {
        g_capture_spoiled = true;
        return fail(cudaErrorStreamCaptureUnsupported);
    }
    return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
    CUstream_st* st = resolve(s);
    if (st->capturing) return fail(cudaErrorIllegalState);
    st->capturing = true;
    st->recorded.clear();
    ++g_capturing;
    g_capture_spoiled = false;
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* graph) {
    CUstream_st* st = resolve(s);
    if (!st->capturing) return fail(cudaErrorIllegalState);
    st->capturing = false;
    --g_capturing;
    if (g_capture_spoiled) { // the device's answer after an illegal call during the capture: no graph
        st->recorded.clear();
        *graph = nullptr;
        return fail(cudaErrorStreamCaptureInvalidated);
    }
    *graph = new CUgraph_st{std::move(st->recorded)};
    st->recorded.clear();
    return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* status) {
    *status = resolve(s)->capturing ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
    *exec = new CUgraphExec_st{graph->work};
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
    for (const auto& w : exec->work) enqueue(s, w);
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
    delete g;
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) {
    delete e;
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* e) {
    *e = new CUevent_st;
    return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned int) { return cudaEventCreate(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete e;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    enqueue(s, [e] { e->at = std::chrono::steady_clock::now(), e->recorded = true; });
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned int) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
    if (!a->recorded || !b->recorded) return fail(cudaErrorInvalidResourceHandle);
    *ms = std::chrono::duration<float, std::milli>(b->at - a->at).count();
    return cudaSuccess;
}

} // extern "C"
