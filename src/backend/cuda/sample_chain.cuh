#pragma once
// The sample kernel's algorithm (backend/cuda/sample.cu), written once over a thread-block policy so that the same
// code runs as the CUDA kernel (blocks of 1024 threads: shuffles, barriers, shared memory) and, in the tests, on the
// host as a block of 1 or 3 threads (tests/ops/test_sample_kernel_logic.cpp), which checks the algorithm against the
// host SamplerChain on a machine without a GPU. The CPU backend's sample op, the twin, is SamplerChain itself.
//
// A call is split in two (Args, below): a first pass over slices of the vocabulary, one block each (penalty, greedy's
// argmax, the filters' values and their max, and for top_k up to slice_top_k_max each slice's candidates), then a
// finish by the last block over the slices' results.
//
// Every filter of the chain keeps a prefix of the candidates in the order (value descending, id ascending), so the
// kernel never sorts a vocabulary: a candidate set is a cut on the 64-bit position key
//     key(v, i) = (~ordered_bits(v)) << 32 | i        (ascending key = the chain's order)
// Top-k's cut is the k-th largest value, found by a radix select on the value half (integer counts: exact). Top-p's
// and the draw's cuts are where the host's walk over its sorted candidates stops. A set of at most sorted_max
// (kSortedMax) candidates, the common case after top-k, is sorted and walked as the host walks it (sorted_walk). A
// larger one is cut by bisection on a monotone predicate of the mass before or after a key: first on the value half
// (32 steps), then on the id half within the tie group the cut falls in (only when that group has more than one
// member); the masses are exp(v - max) summed in double, in a fixed tree. Sets of a few thousand candidates are
// compacted into fast memory first. Top-k = 0 with top-p < 1 (or a plain draw) is that bisection over the whole
// vocabulary: correct, ~35-50 passes over it; the speed of that case is for tuning.
//
// What equals the host bit for bit: the penalty, temperature (IEEE float division), the top-k and min-p sets (log of
// min_p is taken on the host), ties (lower id first), greedy (NaNs included: std::max_element's answer; the other
// filters are not defined on NaNs, on the host either), and top-p and the draw on sorted sets (CUDA's double exp,
// 1 ulp from the host's, aside). What may differ in the last bits: the bisection's sums, which the host adds
// sequentially in sorted order and the bisection in a fixed tree. The chosen token is therefore the host's unless u
// (or 1 - top_p) lies within about 1e-15 of a cumulative mass boundary. Deterministic: fixed reduction order, no
// floating-point atomics.
//
// The policy B provides: tid(), threads(), sync(); sum_d, sum_ll, min_ll, max_ll, max_f (block-wide, the same result
// in every thread); exclusive_sum_ll (the sum over the threads before this one); atomic_or / atomic_and on 32-bit
// words; hist() (kHistBins counters in fast memory) and hist_add(bin) (bin -1: none; called by every lane of a warp
// together); compact_key(), compact_mass() and compact_capacity() (room in fast memory for a small candidate set).
#include <climits>
#include <cstdint>
#include <cstring>

#include "backend/cuda/batched_loads.cuh"
#include "backend/cuda/float_bits.cuh"

#ifdef __CUDACC__
#define WINNOW_SAMPLE_FN __device__ __forceinline__
#else
#include <algorithm>
#include <cmath>
#define WINNOW_SAMPLE_FN inline
#endif

namespace winnow::cuda {

// The sampler chain as the sample kernel reads it (Backend::sample's SampleParams::chain). log_min_p is std::log(min_p)
// taken on the host, so that the min-p threshold max + log(min_p) rounds as the host's does.
struct SampleChain {
    bool llama_order = false;
    float temperature = 0, top_p = 1, min_p = 0, log_min_p = 0, repeat_penalty = 1;
    int top_k = 0, repeat_last_n = -1;
};

namespace sample_chain {

constexpr uint64_t kNone = ~0ull; // the key of an entry that is out of the set
constexpr int kHistBins = 2048;   // top-k's radix select: 11 bits per pass

WINNOW_SAMPLE_FN double exp_d(double x) {
#ifdef __CUDACC__
    return exp(x);
#else
    return std::exp(x);
#endif
}

WINNOW_SAMPLE_FN uint64_t position_key(float v, uint32_t id) { return (static_cast<uint64_t>(~ordered_bits(v)) << 32) | id; }
// The order of the top_k kernel's passes (backend/cuda/top_k.cu, the old greedy path), ascending: its first entry is
// std::max_element's answer, as CpuBackend::top_k's k = 1: a NaN in slot 0 (key 0: no other value has a value half of
// 0, which would be the NaN bits 0x7fffffff), then the values descending with ties by lower id (position_key), then
// the other NaNs by id (after -inf), which max_element never picks. A total order, so every pass has an answer and
// k ids are always k distinct valid ids (the host's partial_sort is not defined on NaNs for k > 1).
WINNOW_SAMPLE_FN uint64_t top_k_key(float v, uint32_t id) {
    if (v != v) return id == 0 ? 0 : (static_cast<uint64_t>(0xFFFFFFFFu) << 32) | id;
    return position_key(v, id);
}
// The largest key whose value half is hv: every candidate with that value.
WINNOW_SAMPLE_FN uint64_t value_cap(uint32_t hv) { return (static_cast<uint64_t>(hv) << 32) | 0xFFFFFFFFu; }

// A candidate set: m entries of (position key, exp mass); entries out of the set have key kNone and mass 0.
struct Set {
    const uint64_t* key;
    const double* mass;
    int m;
};

// Mass of the set's entries with key <= k (below) or key > k (!below).
template <class B>
WINNOW_SAMPLE_FN double mass_split(B& b, const Set& c, uint64_t k, bool below) {
    double t = 0;
    for (int i = b.tid(); i < c.m; i += b.threads()) {
        const uint64_t key = c.key[i];
        if (key != kNone && (key <= k) == below) t += c.mass[i];
    }
    return b.sum_d(t);
}

// The smallest key k of the set for which pred(k) holds, where pred is monotone in k (false, then true), holds at
// kNone (every entry included) and changes only at entries' keys. Every thread calls pred with the same k.
template <class B, class Pred>
WINNOW_SAMPLE_FN uint64_t smallest_key(B& b, const Set& c, Pred pred) {
    uint32_t lo = 0, hi = 0xFFFFFFFFu;
    while (lo < hi) {
        const uint32_t mid = lo + (hi - lo) / 2;
        if (pred(value_cap(mid))) hi = mid;
        else lo = mid + 1;
    }
    // the tie group the cut falls in: its ids span [first, last]; bisect on them only when there are several
    long long first = LLONG_MAX, last = -1;
    for (int i = b.tid(); i < c.m; i += b.threads()) {
        const uint64_t key = c.key[i];
        if (key != kNone && static_cast<uint32_t>(key >> 32) == lo) {
            const long long id = static_cast<long long>(key & 0xFFFFFFFFu);
            first = id < first ? id : first;
            last = id > last ? id : last;
        }
    }
    first = b.min_ll(first);
    last = b.max_ll(last);
    if (last < 0) return value_cap(lo); // no entry there (pred held before any: callers rule this out)
    const uint64_t base = static_cast<uint64_t>(lo) << 32;
    uint32_t ilo = static_cast<uint32_t>(first), ihi = static_cast<uint32_t>(last);
    while (ilo < ihi) {
        const uint32_t mid = ilo + (ihi - ilo) / 2;
        if (pred(base | mid)) ihi = mid;
        else ilo = mid + 1;
    }
    return base | ilo;
}

// The set's entries (key != kNone) copied into the block's fast memory in index order when at most
// compact_capacity() are in (each thread counts its contiguous run of entries, a block scan places the runs); else the
// arrays as they are. Every thread must call it.
template <class B>
WINNOW_SAMPLE_FN Set compact(B& b, const uint64_t* key, const double* mass, int n, long long in_set) {
    if (in_set > b.compact_capacity()) return Set{key, mass, n};
    const int nt = b.threads(), per = (n + nt - 1) / nt, first = b.tid() * per, end = first + per < n ? first + per : n;
    long long local = 0;
    for (int i = first; i < end; ++i) local += key[i] != kNone;
    long long at = b.exclusive_sum_ll(local); // (its barriers: no thread still reads an earlier compacted set)
    uint64_t* k = b.compact_key();
    double* m = b.compact_mass();
    for (int i = first; i < end; ++i)
        if (key[i] != kNone) {
            k[at] = key[i];
            m[at] = mass[i];
            ++at;
        }
    b.sync();
    return Set{k, m, static_cast<int>(in_set)};
}

// Sets of at most kSortedMax entries in fast memory are sorted into the chain's order and walked one entry at a time by
// one thread, as the host walks them (SamplerChain's sorted_probs): the masses summed in that order, each divided by
// the sum, the probabilities added up in order until walk's test holds. That is the host's arithmetic to the last bit
// (CUDA's double exp aside), in a few barriers where the bisection makes 32-64 block-wide sums (top-k 40's draw was
// one of the H200's 150 us). walk(p, m) runs in thread 0 over the sorted probabilities and returns the index it stops
// at; the result is that entry's key, in every thread.
constexpr int kSortedMax = 256;

template <class B, class Walk>
WINNOW_SAMPLE_FN uint64_t sorted_walk(B& b, const Set& set, Walk walk) {
    const int tid = b.tid(), nt = b.threads(), m = set.m;
    uint64_t* sk = b.sorted_key();
    double* sp = b.sorted_mass();
    for (int j = tid; j < m; j += nt) { // an entry's place: the number of keys below its own (the ids make keys distinct)
        const uint64_t k = set.key[j];
        int rank = 0;
        for (int i = 0; i < m; ++i) rank += set.key[i] < k;
        sk[rank] = k;
        sp[rank] = set.mass[j];
    }
    b.sync();
    double sum = 0;
    if (tid == 0)
        for (int r = 0; r < m; ++r) sum += sp[r];
    sum = b.sum_d(tid == 0 ? sum : 0.0); // thread 0's sum, to every thread (adding zeros leaves it as it is)
    for (int r = tid; r < m; r += nt) sp[r] /= sum;
    b.sync();
    const long long at = b.max_ll(tid == 0 ? static_cast<long long>(walk(static_cast<const double*>(sp), m)) : -1);
    return sk[at];
}

// The float a position key was made from (ordered_bits inverted; -0 comes back as +0, which compares and divides as
// -0 does everywhere the chain uses it).
WINNOW_SAMPLE_FN float value_of_key(uint64_t key) {
    const uint32_t o = ~static_cast<uint32_t>(key >> 32);
    return float_from_bits((o & 0x80000000u) ? (o & 0x7FFFFFFFu) : ~o);
}

// What the filters run over: the whole vocabulary (work[i], id i), or the first pass's candidates (keys[i], which hold
// both the value and the id).
struct Source {
    const float* work; // null: keys
    const uint64_t* keys;
    int n;
    WINNOW_SAMPLE_FN float value(int i) const { return work ? work[i] : value_of_key(keys[i]); }
    WINNOW_SAMPLE_FN uint32_t id(int i) const { return work ? static_cast<uint32_t>(i) : static_cast<uint32_t>(keys[i] & 0xFFFFFFFFu); }
};

// The value half of the k-th smallest position key among src's values, i.e. ~ordered_bits of the k-th largest value
// (1 <= k <= src.n). A radix select: three passes, each a histogram of the next 11, 11, 10 bits among the values that
// share the bits found so far, and a scan to the bin where the count reaches k. Integer counts: exact and deterministic.
template <class B>
WINNOW_SAMPLE_FN uint32_t kth_value_half(B& b, const Source& src, long long k) {
    const int tid = b.tid(), nt = b.threads();
    uint32_t prefix = 0;
    long long need = k;
    for (int level = 0; level < 3; ++level) {
        const int shift = level == 0 ? 21 : level == 1 ? 10 : 0, width = level == 2 ? 10 : 11;
        const int bins = 1 << width, fixed = shift + width; // bits at and above `fixed` are prefix's
        uint32_t* hist = b.hist();
        b.sync();
        for (int i = tid; i < bins; i += nt) hist[i] = 0;
        b.sync();
        // the same elements as i = tid, tid + nt, ..., but every lane of a warp makes the same number of calls to
        // hist_add (bin -1 when it has nothing to add), which the device's warp-aggregated add needs
        for (int i0 = tid - tid % 32; i0 < src.n; i0 += nt) {
            const int i = i0 + tid % 32;
            int bin = -1;
            if (i < src.n) {
                const uint32_t hv = ~ordered_bits(src.value(i));
                if (fixed >= 32 || (hv >> fixed) == (prefix >> fixed)) bin = static_cast<int>((hv >> shift) & static_cast<uint32_t>(bins - 1));
            }
            b.hist_add(bin);
        }
        b.sync();
        // each thread owns a run of bins; the one whose run holds the need-th value finds the bin
        const int per = (bins + nt - 1) / nt, first_bin = tid * per, end_bin = first_bin + per < bins ? first_bin + per : bins;
        long long local = 0;
        for (int j = first_bin; j < end_bin; ++j) local += hist[j];
        const long long before = b.exclusive_sum_ll(local);
        long long found = -1, below = -1;
        if (before < need && need <= before + local) {
            long long cum = before;
            for (int j = first_bin; j < end_bin; ++j) {
                if (cum + hist[j] >= need) {
                    found = j;
                    below = cum;
                    break;
                }
                cum += hist[j];
            }
        }
        found = b.max_ll(found);
        below = b.max_ll(below);
        need -= below;
        prefix |= static_cast<uint32_t>(found) << shift;
    }
    return prefix;
}

// ---- The split of a call. The first pass (penalty, greedy's argmax, the filters' values and their max, and for a
// small top_k the candidates) runs in n_slices blocks, each over slice_len logits of its own; the last block to finish
// it runs the rest of the chain (finish) over the slices' results. A single block over the whole vocabulary made ~10
// passes of 48 loads a thread over SmolLM2's 49,152 logits (the H200, 2026-12-04: 26 us for greedy, 150 us for top-k
// 40); a slice of 2,048 is 2 loads a thread, and the slices run at once.
//
// Top-k's candidate path (0 < top_k <= slice_top_k_max): each slice keeps its values that reach the slice's own k-th
// largest. Every value that reaches the vocabulary's k-th largest reaches its slice's (fewer than k values exceed it
// anywhere), so the slices' candidates hold top-k's whole set, and the k-th largest among them is the vocabulary's:
// the chain after top-k reads only that set (min-p's max is the vocabulary's max, which is in it). A slice whose
// candidates (ties at its cut) overflow its slots sends the finish back to the whole vocabulary.

// One slice's results.
struct SlicePart {
    float best_v; // greedy: the slice's largest value (NaNs never win) at its first index best_i (INT_MAX: none)
    int best_i;
    float vmax;   // the filters' values' max over the slice
    int n_cand;   // top-k's candidates of the slice in its slots, or -1: more than slot_capacity
};

// The inputs of one call (launch_sample's arguments); scratch: work (n floats), key (n), mass (n), seen (n bits,
// whatever they hold: the penalty clears them first), parts, slots and gathered.
struct Args {
    const float* logits;
    int n;
    SampleChain c;
    int32_t* history; // may be null
    int capacity;
    int n_history;
    const int32_t* n_history_dev; // may be null
    const double* u;              // may be null when greedy
    bool append;
    int32_t* token;
    float* work;
    uint64_t* key;
    double* mass;
    uint32_t* seen;
    int slice_len;       // a multiple of 32 (a slice's penalty marks are whole words of `seen`), or >= n: one slice
    int n_slices;        // ceil(n / slice_len)
    int slice_top_k_max; // top_k up to this takes the candidate path (0: never)
    int slot_capacity;   // candidates a slice may keep
    SlicePart* parts;    // n_slices
    uint64_t* slots;     // n_slices * slot_capacity, a slice's own run each
    uint64_t* gathered;  // n_slices * slot_capacity: every slice's candidates, in slice order
    int sorted_max;      // sets up to this size (and kSortedMax) are walked in sorted order (0: never, the bisection only)
};

// The walk of llama.cpp's top-p and of the draw: the first index whose cumulative probability (added in order, as the
// host adds it) satisfies reached, else the last.
template <class Reached>
WINNOW_SAMPLE_FN int first_reaching(const double* p, int m, Reached reached) {
    double cum = 0;
    for (int i = 0; i < m; ++i)
        if (reached(cum += p[i])) return i;
    return m - 1;
}

// Whether compact() put a set of `in` entries where sorted_walk may take it, and the call wants it walked.
template <class B>
WINNOW_SAMPLE_FN bool walk_sorted(B& b, const Args& a, long long in) {
    return in <= b.compact_capacity() && in <= kSortedMax && in <= a.sorted_max;
}

WINNOW_SAMPLE_FN int history_length(const Args& a) {
    const int nh = a.n_history_dev ? *a.n_history_dev : a.n_history;
    return nh < 0 ? 0 : nh > a.capacity ? a.capacity : nh;
}

WINNOW_SAMPLE_FN bool by_candidates(const Args& a) {
    return a.c.temperature > 0.0f && a.c.top_k > 0 && a.c.top_k < a.n && a.c.top_k <= a.slice_top_k_max;
}

// Top-k's candidates of one slice (its values at work[0, len), ids from lo) into its slots, in index order (each thread
// a contiguous run, a block scan places the runs); their count, or -1 when they do not fit.
template <class B>
WINNOW_SAMPLE_FN int keep_candidates(B& b, const Args& a, int slice, int lo, int len) {
    const float* work = a.work + lo;
    const uint64_t cut = len > a.c.top_k ? value_cap(kth_value_half(b, Source{work, nullptr, len}, a.c.top_k)) : kNone;
    const int nt = b.threads(), per = (len + nt - 1) / nt, first = b.tid() * per, end = first + per < len ? first + per : len;
    long long local = 0;
    for (int i = first; i < end; ++i) local += position_key(work[i], static_cast<uint32_t>(lo + i)) <= cut;
    const long long total = b.sum_ll(local);
    if (total > a.slot_capacity) return -1;
    long long at = b.exclusive_sum_ll(local);
    uint64_t* slots = a.slots + static_cast<size_t>(slice) * static_cast<size_t>(a.slot_capacity);
    for (int i = first; i < end; ++i) {
        const uint64_t k = position_key(work[i], static_cast<uint32_t>(lo + i));
        if (k <= cut) slots[at++] = k;
    }
    return static_cast<int>(total);
}

// The first pass over slice `slice`: its logits copied to work, the penalty on its ids, then greedy's argmax or the
// filters' values (HF: divided by the temperature), their max and top-k's candidates. Thread 0 writes the slice's part.
template <class B>
WINNOW_SAMPLE_FN void first_pass(B& b, const Args& a, int slice) {
    const int tid = b.tid(), nt = b.threads();
    const SampleChain& c = a.c;
    const int lo = slice * a.slice_len, hi = a.n - lo < a.slice_len ? a.n : lo + a.slice_len, len = hi - lo;
    float* work = a.work + lo;
    const int nh = history_length(a);

    // ---- penalty over the distinct ids of the window (the host's unordered_set): the first thread to mark an id
    // in `seen` applies it. A slice clears its own words of `seen` here, every call: the scratch is shared by calls of
    // every vocabulary size and each size puts `seen` at another offset (launch_sample), so what lies there may be an
    // earlier call's floats. (Clearing the marks after use instead left a larger n's bits over a smaller n's floats:
    // found by the SIMT emulator, tests/gpu CudaSample.MatchesTheCpuTwinOnSmallVocabularies, vocabulary 5 after 3001.)
    const bool penalize = c.repeat_penalty != 1.0f && a.history;
    // The passes over the logits make 8 loads a thread ahead of their uses (batched_loads.cuh). As plain loops they made
    // one L2 round trip per element: the copy's store could not be proved apart from the next load, and the greedy
    // compare was not run ahead of.
    batched_strided<8>(tid, nt, len, [&](int i) { return a.logits[lo + i]; }, [&](int i, float v) { work[i] = v; });
    if (penalize)
        for (int w = lo / 32 + tid; w < (hi + 31) / 32; w += nt) a.seen[w] = 0;
    b.sync();
    int from = 0;
    if (c.repeat_last_n >= 0 && nh > c.repeat_last_n) from = nh - c.repeat_last_n;
    if (penalize) {
        for (int j = from + tid; j < nh; j += nt) {
            const int32_t id = a.history[j];
            if (id < lo || id >= hi) continue; // another slice's id, or out of the vocabulary
            const uint32_t bit = 1u << (id & 31);
            if (!(b.atomic_or(&a.seen[id >> 5], bit) & bit)) {
                const float l = a.work[id];
                a.work[id] = l > 0 ? l / c.repeat_penalty : l * c.repeat_penalty;
            }
        }
        b.sync();
    }

    SlicePart part{-INFINITY, INT_MAX, -INFINITY, 0};
    if (c.temperature <= 0.0f) {
        // ---- greedy: the slice's first maximum; NaNs never win here (slot 0's NaN is finish's to answer)
        float bv = -INFINITY;
        int bi = INT_MAX;
        batched_strided<8>(tid, nt, len, [&](int i) { return work[i]; }, [&](int i, float v) {
            if (v > bv || (v == bv && lo + i < bi)) bv = v, bi = lo + i;
        });
        part.best_v = b.max_f(bv);
        const long long first = b.min_ll(bv == part.best_v ? bi : LLONG_MAX);
        part.best_i = first >= INT_MAX ? INT_MAX : static_cast<int>(first);
    } else {
        // ---- the filters' values v: HF divides by the temperature first, llama.cpp last (finish, for the draw only)
        if (!c.llama_order) {
            batched_strided<8>(tid, nt, len, [&](int i) { return work[i]; }, [&](int i, float v) { work[i] = v / c.temperature; });
            b.sync();
        }
        float vmax = -INFINITY;
        batched_strided<8>(tid, nt, len, [&](int i) { return work[i]; }, [&](int, float v) { vmax = v > vmax ? v : vmax; });
        part.vmax = b.max_f(vmax);
        if (by_candidates(a)) part.n_cand = keep_candidates(b, a, slice, lo, len);
    }
    if (tid == 0) a.parts[slice] = part;
}

// top-k, top-p, min-p and the draw over src, whose values' max is vmax; returns the token.
template <class B>
WINNOW_SAMPLE_FN int32_t filter_and_draw(B& b, const Args& a, const Source& src, float vmax) {
    const int tid = b.tid(), nt = b.threads(), n = src.n;
    const SampleChain& c = a.c;
    uint64_t cut = kNone; // candidates: position_key(v, id) <= cut
    // ---- top-k: the k-th largest value; every candidate reaching it stays (ties at the boundary, as the host)
    if (c.top_k > 0 && c.top_k < n) cut = value_cap(kth_value_half(b, src, c.top_k));

    // ---- top-p over the candidates' softmax (probabilities of v, whichever order)
    bool top_p_ran = false;
    if (c.top_p < 1.0f) {
        long long in = 0;
        batched_strided<8>(tid, nt, n, [&](int i) { return src.value(i); }, [&](int i, float v) {
            const uint64_t k = position_key(v, src.id(i));
            const bool keep = k <= cut;
            a.key[i] = keep ? k : kNone;
            a.mass[i] = keep ? exp_d(static_cast<double>(v) - static_cast<double>(vmax)) : 0.0;
            in += keep;
        });
        in = b.sum_ll(in); // (its barrier also publishes key / mass)
        if (in > 1) {      // the host's top-p leaves a single candidate alone
            top_p_ran = true;
            const Set set = compact(b, a.key, a.mass, n, in);
            // HF: a candidate stays when the mass of it and everything after it is > 1 - top_p (the last one kept is
            // the first whose successors' mass is <= 1 - top_p); llama.cpp: the shortest prefix whose mass reaches top_p
            const double drop = 1.0 - static_cast<double>(c.top_p), need = c.top_p;
            uint64_t last;
            if (walk_sorted(b, a, in) && !c.llama_order) {
                last = sorted_walk(b, set, [&](const double* p, int m) {
                    int keep = m; // the host's walk: the tail dropped while its mass is <= 1 - top_p, at least one kept
                    double tail = 0;
                    for (int i = m - 1; i >= 1; --i) {
                        tail += p[i];
                        if (tail <= drop) keep = i;
                        else break;
                    }
                    return keep - 1;
                });
            } else if (walk_sorted(b, a, in)) {
                last = sorted_walk(b, set, [&](const double* p, int m) { return first_reaching(p, m, [&](double cum) { return cum >= need; }); });
            } else if (!c.llama_order) {
                const double total = mass_split(b, set, kNone, true);
                last = smallest_key(b, set, [&](uint64_t k) { return mass_split(b, set, k, false) / total <= drop; });
            } else {
                const double total = mass_split(b, set, kNone, true);
                last = smallest_key(b, set, [&](uint64_t k) { return mass_split(b, set, k, true) / total >= need; });
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
    // llama.cpp's top-p sorted the candidates before the temperature (its stable sort keeps that order among ties
    // the division makes), else by d; ties by id
    const bool by_d = c.llama_order && !top_p_ran;
    const float dmax = c.llama_order ? vmax / c.temperature : vmax;
    long long in = 0;
    b.sync(); // key / mass may still be read by the top-p search
    batched_strided<8>(tid, nt, n, [&](int i) { return src.value(i); }, [&](int i, float v) {
        const uint32_t id = src.id(i);
        const bool keep = position_key(v, id) <= cut;
        const float d = c.llama_order ? v / c.temperature : v;
        a.key[i] = keep ? position_key(by_d ? d : v, id) : kNone;
        a.mass[i] = keep ? exp_d(static_cast<double>(d) - static_cast<double>(dmax)) : 0.0;
        in += keep;
    });
    in = b.sum_ll(in);
    const Set set = compact(b, a.key, a.mass, n, in);
    const double u = *a.u;
    if (walk_sorted(b, a, in) && in > 0) { // the first whose cumulative probability exceeds u, else the last
        const uint64_t pick = sorted_walk(b, set, [&](const double* p, int m) { return first_reaching(p, m, [&](double cum) { return u < cum; }); });
        return static_cast<int32_t>(pick & 0xFFFFFFFFu);
    }
    const double total = mass_split(b, set, kNone, true);
    // the first candidate whose cumulative probability exceeds u. The whole set's mass over itself is exactly 1 here
    // (the same sum twice), so only u >= 1 finds none; the host then takes the last candidate, and so does this. So
    // does a total that is not a positive finite number (a NaN or +inf logit among the candidates, every logit -inf):
    // no cumulative mass ever exceeds u then, on the host either, and the search below would find no key at all.
    if (!(u < 1.0) || !(total > 0.0 && total < INFINITY)) {
        long long hv = -1, id = -1; // the largest key, as its value half and then its id
        for (int i = tid; i < set.m; i += nt)
            if (set.key[i] != kNone) hv = hv > static_cast<long long>(set.key[i] >> 32) ? hv : static_cast<long long>(set.key[i] >> 32);
        hv = b.max_ll(hv);
        for (int i = tid; i < set.m; i += nt)
            if (set.key[i] != kNone && static_cast<long long>(set.key[i] >> 32) == hv)
                id = id > static_cast<long long>(set.key[i] & 0xFFFFFFFFu) ? id : static_cast<long long>(set.key[i] & 0xFFFFFFFFu);
        id = b.max_ll(id);
        return static_cast<int32_t>(id < 0 ? 0 : id);
    }
    const uint64_t pick = smallest_key(b, set, [&](uint64_t k) { return u < mass_split(b, set, k, true) / total; });
    return static_cast<int32_t>(pick & 0xFFFFFFFFu);
}

// The rest of the chain, by one block once every slice's first pass is done (and visible to it): greedy's answer
// from the slices' maxima, else the filters and the draw over the slices' candidates or the whole vocabulary.
template <class B>
WINNOW_SAMPLE_FN void finish(B& b, const Args& a) {
    const int tid = b.tid(), nt = b.threads();
    const int nh = history_length(a);
    auto done = [&](int32_t id) {
        if (tid == 0) {
            *a.token = id;
            if (a.append && a.history && nh < a.capacity) a.history[nh] = id;
        }
    };
    // ---- greedy: std::max_element's answer. It keeps its first element until a later one compares greater, so a NaN
    // in slot 0 is the answer whatever follows (nothing compares greater than a NaN: [NaN, 1, 2] -> 0); elsewhere a NaN
    // never wins and never blocks ([1, NaN, 2] -> 2, [1, NaN] -> 0): the first maximum of the other values, the first
    // slice's among slices with equal maxima. (No maximum anywhere means every value is a NaN, slot 0's included.)
    if (a.c.temperature <= 0.0f) {
        if (a.work[0] != a.work[0]) {
            done(0);
            return;
        }
        float best = -INFINITY;
        int at = INT_MAX;
        for (int s = 0; s < a.n_slices; ++s) {
            const SlicePart p = a.parts[s];
            if (p.best_i != INT_MAX && (at == INT_MAX || p.best_v > best)) best = p.best_v, at = p.best_i;
        }
        done(at == INT_MAX ? 0 : at);
        return;
    }
    // every thread reads the parts in slice order: the same max and the same offsets in each
    float vmax = -INFINITY;
    bool candidates = by_candidates(a);
    int m = 0;
    for (int s = 0; s < a.n_slices; ++s) {
        const SlicePart p = a.parts[s];
        vmax = p.vmax > vmax ? p.vmax : vmax;
        if (p.n_cand < 0) candidates = false;
        else m += p.n_cand;
    }
    Source src{a.work, nullptr, a.n};
    if (candidates) {
        int off = 0;
        for (int s = 0; s < a.n_slices; ++s) {
            const int count = a.parts[s].n_cand;
            const uint64_t* slots = a.slots + static_cast<size_t>(s) * static_cast<size_t>(a.slot_capacity);
            for (int e = tid; e < count; e += nt) a.gathered[off + e] = slots[e];
            off += count;
        }
        b.sync();
        src = Source{nullptr, a.gathered, m};
    }
    done(filter_and_draw(b, a, src, vmax));
}

// The whole chain in one block (one slice or several, one after another): the host's twin of the kernel's grid.
template <class B>
WINNOW_SAMPLE_FN void run(B& b, const Args& a) {
    for (int s = 0; s < a.n_slices; ++s) {
        first_pass(b, a, s);
        b.sync();
    }
    finish(b, a);
}

} // namespace sample_chain

} // namespace winnow::cuda
