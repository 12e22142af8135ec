// The sampler chain on the device (Backend::sample): the algorithm is sample_chain.cuh's (which says how it works and
// how close to the host it is); this file gives it blocks of 1024 threads (shuffle reductions and scans in a fixed
// order, barriers, shared memory for the top-k histogram and for small candidate sets) and the grid: one block per
// slice of kSliceLen logits runs the first pass, and the last block to finish it runs the rest of the chain
// (arrive_last). Twin: the CPU backend's sample op, the host SamplerChain itself.
//
// Speed: the first pass reads each logit in one block of its own slice (SmolLM2's 49,152 logits: 24 blocks, 2 loads
// a thread). Top-k up to kSliceTopK (llama.cpp's default 40 included) then runs on the slices' candidates, at most
// kSlotCapacity a slice; a larger top_k, or none, runs the rest of the chain over the whole vocabulary in the last
// block: a radix select (3 passes) and one pass per bisection step of top-p and the draw, over candidate sets of at
// most kCompact in shared memory, else over the vocabulary in global memory (~35-50 passes per filter).
#include "backend/cuda/arrive_last.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"

namespace winnow::cuda {

namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kCompact = 2048; // candidate sets up to this size are searched in shared memory
constexpr int kSliceLen = 2048;    // logits per block in the first pass (a multiple of 32)
constexpr int kSliceTopK = 64;     // top_k up to this runs on the slices' candidates
constexpr int kSlotCapacity = 128; // candidates a slice may keep (top_k, and ties at its cut)

struct Shared {
    double d[kWarps];
    long long ll[kWarps];
    float f[kWarps];
    uint32_t hist[sample_chain::kHistBins]; // top-k's radix select
    uint64_t key[kCompact]; // a compacted candidate set
    double mass[kCompact];
    uint64_t sorted_key[sample_chain::kSortedMax]; // a small set in the chain's order (sorted_walk)
    double sorted_mass[sample_chain::kSortedMax];
};

// Block-wide reduction in a fixed order (warp butterfly, then the warp totals in warp order): the same value in
// every thread, the same every run.
template <class T, class Op>
__device__ T block_reduce(T v, Op op, T* sh) {
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    if (threadIdx.x % 32 == 0) sh[threadIdx.x / 32] = v;
    __syncthreads();
    T r = sh[0];
    for (int w = 1; w < kWarps; ++w) r = op(r, sh[w]);
    __syncthreads(); // sh may be reused at once
    return r;
}

struct CudaBlock {
    Shared& s;
    __device__ int tid() const { return threadIdx.x; }
    __device__ int threads() const { return kThreads; }
    __device__ void sync() const { __syncthreads(); }
    __device__ double sum_d(double v) { return block_reduce(v, [](double a, double b) { return a + b; }, s.d); }
    __device__ long long sum_ll(long long v) { return block_reduce(v, [](long long a, long long b) { return a + b; }, s.ll); }
    __device__ long long min_ll(long long v) { return block_reduce(v, [](long long a, long long b) { return a < b ? a : b; }, s.ll); }
    __device__ long long max_ll(long long v) { return block_reduce(v, [](long long a, long long b) { return a > b ? a : b; }, s.ll); }
    __device__ float max_f(float v) { return block_reduce(v, [](float a, float b) { return a > b ? a : b; }, s.f); }
    __device__ long long exclusive_sum_ll(long long v) {
        const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
        long long inclusive = v;
        for (int o = 1; o < 32; o <<= 1) {
            const long long y = __shfl_up_sync(0xffffffffu, inclusive, o);
            if (lane >= o) inclusive += y;
        }
        if (lane == 31) s.ll[warp] = inclusive;
        __syncthreads();
        long long before = inclusive - v;
        for (int w = 0; w < warp; ++w) before += s.ll[w];
        __syncthreads();
        return before;
    }
    __device__ uint32_t* hist() const { return s.hist; }
    // Called by all 32 lanes of a warp together (bin -1: nothing to add). Lanes with the same bin add once, by their
    // first lane: top-k's first radix pass puts most of a vocabulary's logits in a few bins, and one atomic per logit
    // there serialised (the H200's first run: 150 us per top-k 40 over 49,152 logits). The counts are the same integers.
    __device__ void hist_add(int bin) const {
        const unsigned peers = __match_any_sync(0xffffffffu, bin);
        if (bin >= 0 && static_cast<int>(threadIdx.x % 32) == __ffs(static_cast<int>(peers)) - 1) atomicAdd(&s.hist[bin], static_cast<unsigned>(__popc(peers)));
    }
    __device__ uint32_t atomic_or(uint32_t* w, uint32_t bits) const { return atomicOr(w, bits); }
    __device__ uint32_t atomic_and(uint32_t* w, uint32_t bits) const { return atomicAnd(w, bits); }

    __device__ uint64_t* compact_key() const { return s.key; }
    __device__ double* compact_mass() const { return s.mass; }
    __device__ int compact_capacity() const { return kCompact; }
    __device__ uint64_t* sorted_key() const { return s.sorted_key; }
    __device__ double* sorted_mass() const { return s.sorted_mass; }
};

__global__ void __launch_bounds__(kThreads) sample_kernel(sample_chain::Args a, int* arrivals) {
    pdl_wait();
    pdl_launch_dependents();
    __shared__ Shared s;
    CudaBlock b{s};
    sample_chain::first_pass(b, a, static_cast<int>(blockIdx.x));
    if (!arrive_last(arrivals, static_cast<int>(gridDim.x))) return;
    sample_chain::finish(b, a);
}

// Scratch layout, each part 256-byte aligned: the arrival count (at offset 0 for every vocabulary size: the backend
// zeroes the scratch when it allocates it, and the last block leaves the count 0), work (n floats), key (n uint64),
// mass (n doubles), seen (n bits in 32-bit words), the slices' parts, their slots and the gathered candidates.
size_t aligned(size_t bytes) { return (bytes + 255) / 256 * 256; }

struct Layout {
    size_t work, key, mass, seen, parts, slots, gathered, end;
    explicit Layout(int64_t n) {
        const size_t m = static_cast<size_t>(n), slices = (m + kSliceLen - 1) / kSliceLen;
        work = aligned(sizeof(int));
        key = work + aligned(m * 4);
        mass = key + aligned(m * 8);
        seen = mass + aligned(m * 8);
        parts = seen + aligned((m + 31) / 32 * 4);
        slots = parts + aligned(slices * sizeof(sample_chain::SlicePart));
        gathered = slots + aligned(slices * kSlotCapacity * 8);
        end = gathered + aligned(slices * kSlotCapacity * 8);
    }
};

} // namespace

size_t sample_workspace_bytes(int64_t n) { return Layout(n).end; }

void launch_sample(const float* logits, int n, const SampleChain& c, const int32_t* history, int capacity, int n_history,
                   const int32_t* n_history_dev, const double* u, bool append, int32_t* token, void* workspace, bool sliced,
                   cudaStream_t s) {
    auto* base = static_cast<uint8_t*>(workspace);
    const Layout at(n);
    sample_chain::Args a;
    a.logits = logits;
    a.n = n;
    a.c = c;
    a.history = const_cast<int32_t*>(history); // written only with append
    a.capacity = capacity;
    a.n_history = n_history;
    a.n_history_dev = n_history_dev;
    a.u = u;
    a.append = append;
    a.token = token;
    a.work = reinterpret_cast<float*>(base + at.work);
    a.key = reinterpret_cast<uint64_t*>(base + at.key);
    a.mass = reinterpret_cast<double*>(base + at.mass);
    a.seen = reinterpret_cast<uint32_t*>(base + at.seen);
    a.slice_len = sliced ? kSliceLen : n;
    a.n_slices = (n + a.slice_len - 1) / a.slice_len;
    a.slice_top_k_max = sliced ? kSliceTopK : 0;
    a.slot_capacity = kSlotCapacity;
    a.sorted_max = sliced ? sample_chain::kSortedMax : 0; // unsliced: the bisection only, as the first version
    a.parts = reinterpret_cast<sample_chain::SlicePart*>(base + at.parts);
    a.slots = reinterpret_cast<uint64_t*>(base + at.slots);
    a.gathered = reinterpret_cast<uint64_t*>(base + at.gathered);
    launch(sample_kernel, a.n_slices, kThreads, 0, s, a, reinterpret_cast<int*>(base));
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda
