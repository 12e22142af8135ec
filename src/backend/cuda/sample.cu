// The sampler chain on the device (Backend::sample): penalty over the history window, temperature, top-k, top-p,
// min-p and the draw from the host's uniform u, in one block of 1024 threads. Twin: the CPU backend's sample op,
// which is the host SamplerChain itself (decode/sampler.cpp); read that first, this follows it step by step.
//
// Every filter of the chain keeps a prefix of the candidates in the order (value descending, id ascending), so the
// kernel never sorts: a candidate set is a cut on the 64-bit position key
//     key(v, i) = (~ordered_bits(v)) << 32 | i        (ascending key = the chain's order)
// and each filter finds its cut as the smallest key for which a monotone predicate holds, by bisection: first on the
// value half (32 steps), then on the id half within the tie group the cut falls in (only when that group has more
// than one member). Top-k counts candidates (exact); top-p and the draw sum exp(v - max) in double, as the host does.
//
// What equals the host bit for bit: the penalty, temperature (IEEE float division), the top-k and min-p sets (log of
// min_p is taken on the host), ties (lower id first) and greedy. What may differ in the last bits: the double sums
// of top-p and the draw, which the host adds sequentially in sorted order and this kernel adds in a fixed tree, and
// CUDA's double exp (1 ulp) against the host's. The chosen token is therefore the host's unless u (or 1 - top_p) lies
// within about 1e-15 of a cumulative mass boundary; the kernel is deterministic (fixed reduction order, no atomics
// in any sum).
//
// Speed: each bisection step is one pass over the candidates. Sets of at most kCompact candidates (after top-k, or a
// draw after top-p / min-p) are first compacted into shared memory; a full vocabulary (top_k = 0 and top_p < 1, or a
// plain draw) is searched in global memory, ~50 passes over it. Written to be obviously correct first.
#include <cfloat>
#include <climits>
#include <cstdint>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

namespace winnow::cuda {

namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kCompact = 2048;            // candidate sets up to this size are searched in shared memory
constexpr uint64_t kNone = ~0ull;         // the key of a candidate that is out of the set

// Monotone map of floats to unsigned integers (-0 and +0 are one value, as the host's comparisons have them).
__device__ __forceinline__ uint32_t ordered_bits(float v) {
    if (v == 0.0f) v = 0.0f;
    const uint32_t b = __float_as_uint(v);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
__device__ __forceinline__ uint64_t position_key(float v, uint32_t id) { return (static_cast<uint64_t>(~ordered_bits(v)) << 32) | id; }
// The largest key whose value half is hv: every candidate with that value.
__device__ __forceinline__ uint64_t value_cap(uint32_t hv) { return (static_cast<uint64_t>(hv) << 32) | 0xFFFFFFFFu; }

// Block-wide reduction in a fixed order (warp butterfly, then warp totals in warp order), the same result in every
// thread. sh: kWarps entries of shared memory; every thread must call it.
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

struct Shared {
    double d[kWarps];
    long long ll[kWarps];
    float f[kWarps];
    uint64_t key[kCompact]; // a compacted candidate set
    double mass[kCompact];
    uint32_t warp_count[kWarps];
};

__device__ double sum_d(double v, Shared& s) { return block_reduce(v, [](double a, double b) { return a + b; }, s.d); }
__device__ long long sum_ll(long long v, Shared& s) { return block_reduce(v, [](long long a, long long b) { return a + b; }, s.ll); }
__device__ long long min_ll(long long v, Shared& s) { return block_reduce(v, [](long long a, long long b) { return a < b ? a : b; }, s.ll); }
__device__ long long max_ll(long long v, Shared& s) { return block_reduce(v, [](long long a, long long b) { return a > b ? a : b; }, s.ll); }
__device__ float max_f(float v, Shared& s) { return block_reduce(v, [](float a, float b) { return a > b ? a : b; }, s.f); }

// A candidate set: m entries of (position key, exp mass); entries out of the set have key kNone and mass 0.
struct Set {
    const uint64_t* key;
    const double* mass;
    int m;
};

// mass of the set's entries with key <= k (below = true) or key > k (below = false)
__device__ double mass_split(const Set& c, uint64_t k, bool below, Shared& s) {
    double t = 0;
    for (int i = threadIdx.x; i < c.m; i += kThreads) {
        const uint64_t key = c.key[i];
        if (key != kNone && (key <= k) == below) t += c.mass[i];
    }
    return sum_d(t, s);
}

// The smallest key k of the set for which pred(k) holds, where pred is monotone in k (false, then true) and holds at
// kNone - 1 (every candidate included). pred is called by every thread with the same k.
template <class Pred>
__device__ uint64_t smallest_key(const Set& c, Pred pred, Shared& s) {
    uint32_t lo = 0, hi = 0xFFFFFFFFu;
    while (lo < hi) {
        const uint32_t mid = lo + (hi - lo) / 2;
        if (pred(value_cap(mid))) hi = mid;
        else lo = mid + 1;
    }
    // the tie group the cut falls in: its ids span [first, last]; bisect on them only when there are several
    long long first = LLONG_MAX, last = -1;
    for (int i = threadIdx.x; i < c.m; i += kThreads) {
        const uint64_t key = c.key[i];
        if (key != kNone && static_cast<uint32_t>(key >> 32) == lo) {
            const long long id = static_cast<long long>(key & 0xFFFFFFFFu);
            first = id < first ? id : first;
            last = id > last ? id : last;
        }
    }
    first = min_ll(first, s);
    last = max_ll(last, s);
    if (last < 0) return value_cap(lo); // no candidate there (pred held before any: callers rule this out)
    const uint64_t base = static_cast<uint64_t>(lo) << 32;
    uint32_t ilo = static_cast<uint32_t>(first), ihi = static_cast<uint32_t>(last);
    while (ilo < ihi) {
        const uint32_t mid = ilo + (ihi - ilo) / 2;
        if (pred(base | mid)) ihi = mid;
        else ilo = mid + 1;
    }
    return base | ilo;
}

// Writes the set's entries (key kNone = out) of the global arrays into shared memory, in index order, when at most
// kCompact are in; returns the set to search.
__device__ Set compact(const uint64_t* key, const double* mass, int n, long long in_set, Shared& s) {
    if (in_set > kCompact) return Set{key, mass, n};
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    int base = 0;
    for (int r = 0; r < n; r += kThreads) {
        const int i = r + threadIdx.x;
        const bool in = i < n && key[i] != kNone;
        const uint32_t ballot = __ballot_sync(0xffffffffu, in);
        if (lane == 0) s.warp_count[warp] = __popc(ballot);
        __syncthreads();
        int before = base;
        for (int w = 0; w < warp; ++w) before += static_cast<int>(s.warp_count[w]);
        before += __popc(ballot & ((1u << lane) - 1u));
        if (in) {
            s.key[before] = key[i];
            s.mass[before] = mass[i];
        }
        for (int w = 0; w < kWarps; ++w) base += static_cast<int>(s.warp_count[w]);
        __syncthreads();
    }
    return Set{s.key, s.mass, static_cast<int>(in_set)};
}

__global__ void sample_kernel(const float* __restrict__ logits, int n, SampleChain c, const int32_t* __restrict__ history, int capacity,
                              int n_history, const int32_t* __restrict__ n_history_dev, const double* __restrict__ u_dev, bool append,
                              int32_t* __restrict__ token, float* __restrict__ work, uint64_t* __restrict__ gkey, double* __restrict__ gmass,
                              uint32_t* __restrict__ seen) {
    __shared__ Shared s;
    const int tid = threadIdx.x;
    int nh = n_history_dev ? *n_history_dev : n_history;
    nh = nh < 0 ? 0 : nh > capacity ? capacity : nh;

    // ---- penalty over the distinct ids of the window (the host's unordered_set): the first thread to mark an id
    // in `seen` applies it; the marks are cleared again for the next call
    for (int i = tid; i < n; i += kThreads) work[i] = logits[i];
    __syncthreads();
    int from = 0;
    if (c.repeat_last_n >= 0 && nh > c.repeat_last_n) from = nh - c.repeat_last_n;
    const bool penalize = c.repeat_penalty != 1.0f && history;
    if (penalize) {
        for (int j = from + tid; j < nh; j += kThreads) {
            const int32_t id = history[j];
            if (id < 0 || id >= n) continue;
            const uint32_t bit = 1u << (id & 31);
            if (!(atomicOr(&seen[id >> 5], bit) & bit)) {
                const float l = work[id];
                work[id] = l > 0 ? l / c.repeat_penalty : l * c.repeat_penalty;
            }
        }
        __syncthreads();
        for (int j = from + tid; j < nh; j += kThreads) {
            const int32_t id = history[j];
            if (id >= 0 && id < n) atomicAnd(&seen[id >> 5], ~(1u << (id & 31)));
        }
    }

    auto finish = [&](int32_t id) {
        if (tid == 0) {
            *token = id;
            if (append && history && nh < capacity) const_cast<int32_t*>(history)[nh] = id;
        }
    };

    // ---- greedy: the first maximum (std::max_element)
    if (c.temperature <= 0.0f) {
        float bv = -INFINITY;
        int bi = INT_MAX;
        for (int i = tid; i < n; i += kThreads) {
            const float v = work[i];
            if (v > bv || (v == bv && i < bi)) bv = v, bi = i;
        }
        const float mx = max_f(bv, s);
        long long first = bv == mx ? bi : LLONG_MAX;
        first = min_ll(first, s);
        finish(first == LLONG_MAX ? 0 : static_cast<int32_t>(first));
        return;
    }

    // ---- the filters' values v: HF divides by the temperature first, llama.cpp last (below, for the draw only)
    if (!c.llama_order) {
        __syncthreads();
        for (int i = tid; i < n; i += kThreads) work[i] = work[i] / c.temperature;
    }
    __syncthreads();
    float vmax = -INFINITY;
    for (int i = tid; i < n; i += kThreads) vmax = fmaxf(vmax, work[i]);
    vmax = max_f(vmax, s);

    uint64_t cut = kNone; // candidates: position_key(v, i) <= cut
    // ---- top-k: the k-th largest value; every candidate reaching it stays (ties at the boundary, as the host)
    if (c.top_k > 0 && c.top_k < n) {
        uint32_t lo = 0, hi = 0xFFFFFFFFu;
        while (lo < hi) {
            const uint32_t mid = lo + (hi - lo) / 2;
            long long cnt = 0;
            for (int i = tid; i < n; i += kThreads) cnt += position_key(work[i], i) <= value_cap(mid);
            if (sum_ll(cnt, s) >= c.top_k) hi = mid;
            else lo = mid + 1;
        }
        cut = value_cap(lo);
    }

    // ---- top-p over the candidates' softmax (probabilities of v, whichever order)
    bool top_p_ran = false;
    if (c.top_p < 1.0f) {
        long long in = 0;
        for (int i = tid; i < n; i += kThreads) {
            const uint64_t k = position_key(work[i], i);
            const bool keep = k <= cut;
            gkey[i] = keep ? k : kNone;
            gmass[i] = keep ? exp(static_cast<double>(work[i]) - static_cast<double>(vmax)) : 0.0;
            in += keep;
        }
        in = sum_ll(in, s); // (the sum's barrier also publishes gkey / gmass)
        if (in > 1) {
            top_p_ran = true;
            const Set set = compact(gkey, gmass, n, in, s);
            const double total = mass_split(set, kNone, true, s);
            uint64_t last;
            if (!c.llama_order) {
                // HF: a candidate stays when the mass of it and everything after it is > 1 - top_p; the last one kept
                // is the first whose successors' mass is <= 1 - top_p
                const double drop = 1.0 - static_cast<double>(c.top_p);
                last = smallest_key(set, [&](uint64_t k) { return mass_split(set, k, false, s) / total <= drop; }, s);
            } else {
                // llama.cpp: the shortest prefix whose mass reaches top_p
                const double need = c.top_p;
                last = smallest_key(set, [&](uint64_t k) { return mass_split(set, k, true, s) / total >= need; }, s);
            }
            cut = last < cut ? last : cut;
        }
    }

    // ---- min-p: v >= max + log(min_p), in float as the host computes it
    if (c.min_p > 0.0f) {
        const uint64_t k = value_cap(~ordered_bits(vmax + c.log_min_p));
        cut = k < cut ? k : cut;
    }

    // ---- the draw: softmax of d (llama.cpp: v / temperature now) over the candidates, in the host's order: by v when
    // llama.cpp's top-p sorted the candidates before the temperature (stable sort keeps that order among new ties of
    // d), else by d; ties by id
    const bool by_d = c.llama_order && !top_p_ran;
    const float dmax = c.llama_order ? vmax / c.temperature : vmax;
    long long in = 0;
    __syncthreads(); // gkey / gmass may still be read by the top-p search
    for (int i = tid; i < n; i += kThreads) {
        const float v = work[i];
        const bool keep = position_key(v, i) <= cut;
        const float d = c.llama_order ? v / c.temperature : v;
        gkey[i] = keep ? position_key(by_d ? d : v, i) : kNone;
        gmass[i] = keep ? exp(static_cast<double>(d) - static_cast<double>(dmax)) : 0.0;
        in += keep;
    }
    in = sum_ll(in, s);
    const Set set = compact(gkey, gmass, n, in, s);
    const double total = mass_split(set, kNone, true, s);
    const double u = *u_dev;
    // the first candidate whose cumulative probability exceeds u. The whole set's mass over itself is exactly 1 here
    // (the same sum twice), so only u >= 1 finds none; the host then takes the last candidate, and so does this.
    if (!(u < 1.0)) {
        long long hv = -1, id = -1; // the largest key, as its value half and then its id
        for (int i = tid; i < set.m; i += kThreads)
            if (set.key[i] != kNone) hv = max(hv, static_cast<long long>(set.key[i] >> 32));
        hv = max_ll(hv, s);
        for (int i = tid; i < set.m; i += kThreads)
            if (set.key[i] != kNone && static_cast<long long>(set.key[i] >> 32) == hv) id = max(id, static_cast<long long>(set.key[i] & 0xFFFFFFFFu));
        id = max_ll(id, s);
        finish(static_cast<int32_t>(id < 0 ? 0 : id));
        return;
    }
    const uint64_t pick = smallest_key(set, [&](uint64_t k) { return u < mass_split(set, k, true, s) / total; }, s);
    finish(static_cast<int32_t>(pick & 0xFFFFFFFFu));
}

} // namespace

size_t sample_workspace_bytes(int64_t n) {
    // work (float), key (uint64), mass (double), seen (one bit per id, in 32-bit words)
    const size_t a = (static_cast<size_t>(n) * 4 + 255) / 256 * 256;
    const size_t b = (static_cast<size_t>(n) * 8 + 255) / 256 * 256;
    const size_t w = (static_cast<size_t>(n) + 31) / 32 * 4;
    return a + 2 * b + w;
}

void launch_sample(const float* logits, int n, const SampleChain& c, const int32_t* history, int capacity, int n_history,
                   const int32_t* n_history_dev, const double* u, bool append, int32_t* token, void* workspace, cudaStream_t s) {
    auto* base = static_cast<uint8_t*>(workspace);
    const size_t a = (static_cast<size_t>(n) * 4 + 255) / 256 * 256;
    const size_t b = (static_cast<size_t>(n) * 8 + 255) / 256 * 256;
    auto* work = reinterpret_cast<float*>(base);
    auto* key = reinterpret_cast<uint64_t*>(base + a);
    auto* mass = reinterpret_cast<double*>(base + a + b);
    auto* seen = reinterpret_cast<uint32_t*>(base + a + 2 * b);
    sample_kernel<<<1, kThreads, 0, s>>>(logits, n, c, history, capacity, n_history, n_history_dev, u, append, token, work, key, mass, seen);
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda
