// The CUDA sample kernel's algorithm (backend/cuda/sample_chain.cuh) run on the host, as a block of 1 or 3 threads
// (std::thread and a barrier standing in for the warp shuffles and __syncthreads), against the host SamplerChain on
// the harness's logit shapes x chains x u values: the kernel's logic (position keys, the bisections, the top-p and
// draw predicates, llama.cpp's order of ties after the temperature, the penalty's window and de-duplication, the
// compaction) is checked on a machine without a GPU. The CUDA build of the same code is compared with the CPU
// backend's op by tests/gpu/test_cuda_sample.cpp and the op harness on the GPU machine.
#include <atomic>
#include <barrier>
#include <thread>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cuda/head_top_k_logic.cuh"
#include "backend/cuda/sample_chain.cuh"
#include "sample_cases.h"

namespace {

using namespace winnow;
using namespace winnow::test::sampling;
namespace sc = winnow::cuda::sample_chain;

// What the threads of one emulated block share.
struct Common {
    Common(int nt, int compact_limit) : bar(nt), d(nt), ll(nt), f(nt), key(compact_limit), mass(compact_limit), hist(sc::kHistBins) {}
    std::barrier<> bar;
    std::vector<double> d;
    std::vector<long long> ll;
    std::vector<float> f;
    std::vector<uint64_t> key; // the compacted set ("shared memory")
    std::vector<double> mass;
    std::vector<uint32_t> hist;
    std::vector<uint64_t> sorted_key = std::vector<uint64_t>(sc::kSortedMax);
    std::vector<double> sorted_mass = std::vector<double>(sc::kSortedMax);
};

// The policy sample_chain::run expects, for thread t of nt. Reductions combine the threads' values in thread order.
struct HostBlock {
    Common& c;
    int t, nt, compact_limit;
    int tid() const { return t; }
    int threads() const { return nt; }
    void sync() { c.bar.arrive_and_wait(); }
    template <class T, class Op>
    T reduce(std::vector<T>& slot, T v, Op op) {
        slot[t] = v;
        sync();
        T r = slot[0];
        for (int w = 1; w < nt; ++w) r = op(r, slot[w]);
        sync();
        return r;
    }
    double sum_d(double v) { return reduce(c.d, v, [](double a, double b) { return a + b; }); }
    long long sum_ll(long long v) { return reduce(c.ll, v, [](long long a, long long b) { return a + b; }); }
    long long min_ll(long long v) { return reduce(c.ll, v, [](long long a, long long b) { return std::min(a, b); }); }
    long long max_ll(long long v) { return reduce(c.ll, v, [](long long a, long long b) { return std::max(a, b); }); }
    float max_f(float v) { return reduce(c.f, v, [](float a, float b) { return a > b ? a : b; }); }
    long long exclusive_sum_ll(long long v) {
        c.ll[t] = v;
        sync();
        long long before = 0;
        for (int w = 0; w < t; ++w) before += c.ll[w];
        sync();
        return before;
    }
    uint32_t* hist() { return c.hist.data(); }
    void hist_add(int bin) {
        if (bin >= 0) std::atomic_ref<uint32_t>(c.hist[static_cast<size_t>(bin)]).fetch_add(1);
    }
    uint32_t atomic_or(uint32_t* w, uint32_t bits) { return std::atomic_ref<uint32_t>(*w).fetch_or(bits); }
    uint32_t atomic_and(uint32_t* w, uint32_t bits) { return std::atomic_ref<uint32_t>(*w).fetch_and(bits); }
    uint64_t* compact_key() { return c.key.data(); }
    double* compact_mass() { return c.mass.data(); }
    int compact_capacity() const { return compact_limit; }
    uint64_t* sorted_key() { return c.sorted_key.data(); }
    double* sorted_mass() { return c.sorted_mass.data(); }
};

// How the kernel splits a call (sample_chain.cuh): one slice over the whole vocabulary, or slices of slice_len logits
// (their first passes one after another, then the finish) with top-k's candidate path up to top_k_max.
struct Split {
    int slice_len = 0; // 0: one slice
    int top_k_max = 0;
    int slot_capacity = 0;
    int sorted_max = sc::kSortedMax; // 0: every top-p and draw by bisection
};

// The kernel's algorithm as a Picker: scratch like the device's, where the seen bits hold whatever lay there before
// (the backend's workspace is shared by calls of every vocabulary size, each with `seen` at its own offset): every
// call starts with them all set, so a kernel that trusted them to be clear would skip the penalty.
struct KernelOnHost {
    KernelOnHost(const std::vector<float>& logits, const std::vector<int32_t>& history, int threads, int compact_limit, Split split = {})
        : logits(logits), history(history), threads(threads), compact_limit(compact_limit), split(split), work(logits.size()), key(logits.size()),
          mass(logits.size()), seen((logits.size() + 31) / 32) {
        this->history.push_back(-7); // room for an append, never read as part of the window
        const int n = static_cast<int>(logits.size());
        if (this->split.slice_len <= 0) this->split.slice_len = n;
        n_slices = (n + this->split.slice_len - 1) / this->split.slice_len;
        parts.resize(static_cast<size_t>(n_slices));
        slots.resize(static_cast<size_t>(n_slices) * static_cast<size_t>(std::max(1, this->split.slot_capacity)));
        gathered.resize(slots.size());
    }
    int32_t operator()(const SamplingParams& chain, double u) {
        cuda::SampleChain c;
        c.llama_order = chain.order == SamplerOrder::llama_cpp;
        c.temperature = chain.temperature;
        c.top_k = chain.top_k;
        c.top_p = chain.top_p;
        c.min_p = chain.min_p;
        c.log_min_p = chain.min_p > 0.0f ? std::log(chain.min_p) : 0.0f;
        c.repeat_penalty = chain.repeat_penalty;
        c.repeat_last_n = chain.repeat_last_n;
        int32_t token = -1;
        sc::Args a{logits.data(), static_cast<int>(logits.size()), c, history.data(), static_cast<int>(history.size()),
                   static_cast<int>(history.size()) - 1, nullptr, &u, false, &token, work.data(), key.data(), mass.data(), seen.data(),
                   split.slice_len, n_slices, split.top_k_max, split.slot_capacity, parts.data(), slots.data(), gathered.data(),
                   split.sorted_max};
        std::fill(seen.begin(), seen.end(), 0xffffffffu);
        std::fill(parts.begin(), parts.end(), sc::SlicePart{NAN, -5, NAN, -5});
        Common common(threads, compact_limit);
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t)
            pool.emplace_back([&, t] {
                HostBlock b{common, t, threads, compact_limit};
                sc::run(b, a);
            });
        for (auto& th : pool) th.join();
        if (sc::by_candidates(a)) {
            bool overflow = false;
            for (const auto& p : parts) overflow |= p.n_cand < 0;
            ++(overflow ? paths->whole_vocabulary : paths->candidates);
        }
        return token;
    }
    std::vector<float> logits;
    std::vector<int32_t> history;
    int threads, compact_limit;
    Split split;
    int n_slices = 1;
    std::vector<float> work;
    std::vector<uint64_t> key;
    std::vector<double> mass;
    std::vector<uint32_t> seen;
    std::vector<sc::SlicePart> parts;
    std::vector<uint64_t> slots, gathered;
    // sampled calls with a top_k the candidate path serves: how many it served, how many a slice's overflow sent to the
    // whole vocabulary (shared: compare() takes the picker by copy)
    struct Paths { int candidates = 0, whole_vocabulary = 0; };
    std::shared_ptr<Paths> paths = std::make_shared<Paths>();
};

KernelOnHost::Paths expect_kernel_matches_chain(Shape shape, int64_t n, int threads, int compact_limit, int random_u, Split split = {}) {
    const auto logits = make_logits(shape, n, 1000 + static_cast<uint64_t>(n));
    const auto history = make_history(n, 100, 7, logits);
    const std::string what = std::string(name(shape)) + " vocab " + std::to_string(n) + " threads " + std::to_string(threads) +
                             " compact " + std::to_string(compact_limit) + " slices of " + std::to_string(split.slice_len) + " slots " +
                             std::to_string(split.slot_capacity);
    const KernelOnHost kernel(logits, history, threads, compact_limit, split);
    const Tally t = compare(kernel, host_chain(logits, history), uniforms(99, random_u), what, greedy_only(shape));
    std::printf("%s: %zu tokens compared, %zu on a rounding boundary, %zu differ; top-k calls on the slices' candidates %d, on the "
                "whole vocabulary after an overflow %d\n",
                what.c_str(), t.compared, t.near_boundary, t.mismatches, kernel.paths->candidates, kernel.paths->whole_vocabulary);
    EXPECT_EQ(t.mismatches, 0u) << t.first_failure;
    EXPECT_LE(t.near_boundary, t.compared / 100) << "rounding-boundary cases should be rare";
    return *kernel.paths;
}

// One thread: the algorithm itself, in global memory (no compaction) and compacted.
TEST(SampleKernelOnHost, OneThreadMatchesTheChain) {
    for (Shape s : {Shape::random, Shape::ties, Shape::near_ties, Shape::with_neg_inf, Shape::merged_by_temperature,
                    Shape::four_equal, Shape::all_neg_inf, Shape::pos_inf})
        for (int limit : {0, 2048}) expect_kernel_matches_chain(s, 1003, 1, limit, 6);
    expect_kernel_matches_chain(Shape::ties, 7, 1, 2048, 6);
    // small sets walked in sorted order (sorted_walk) where top-p's masses meet 1 - top_p and top_p exactly
    for (int threads : {1, 3}) expect_kernel_matches_chain(Shape::four_equal, 7, threads, 2048, 6);
}

TEST(SampleKernelOnHost, OneThreadMatchesTheChainOnTheSmolLm2Vocabulary) {
    expect_kernel_matches_chain(Shape::random, 49152, 1, 2048, 1);
    expect_kernel_matches_chain(Shape::ties, 49152, 1, 2048, 1);
}

// Greedy on NaN logits is std::max_element's answer (the host's SamplerChain): the first element unless a later one
// compares greater, so a NaN in slot 0 is the answer ([NaN, 1, 2] -> 0), a NaN elsewhere never wins and never blocks
// ([1, NaN, 2] -> 2, [1, NaN] -> 0), every NaN -> 0. Hand-written rows with that answer, then the kernel against the
// host chain on them with and without a penalty (whose window holds the NaN and the maximum), temperature 0 and
// below, on 1 and 3 threads; then the NaN shapes of the harness (greedy chains only: the other filters are not
// defined on NaNs, on the host either).
TEST(SampleKernelOnHost, GreedyOnNanLogitsIsMaxElement) {
    const float nan = NAN, inf = INFINITY;
    struct Row { std::vector<float> l; int32_t want; };
    const std::vector<Row> rows{{{nan, 1, 2}, 0},
                                {{1, nan, 2}, 2},
                                {{nan, nan}, 0},
                                {{nan}, 0},
                                {{1, nan}, 0},
                                {{nan, -inf}, 0},
                                {{-inf, nan, -inf}, 0},
                                {{-0.0f, nan, 0.0f}, 0},
                                {{2, nan, 2}, 0},
                                {{0, nan, 3, nan, 3}, 2},
                                {{-inf, -inf, nan, 5, inf, nan, inf}, 4},
                                {{-inf, nan, nan, nan, -1}, 4}};
    for (const Row& r : rows) {
        std::string what = "[";
        for (float v : r.l) what += std::to_string(v) + " ";
        what += "]";
        const int32_t n = static_cast<int32_t>(r.l.size());
        // the penalty's window: the first entry and the largest non-NaN one (dividing or multiplying a NaN keeps it NaN)
        std::vector<int32_t> history{0, n - 1, static_cast<int32_t>(std::max_element(r.l.begin(), r.l.end()) - r.l.begin()), n - 1};
        const std::vector<int32_t> none;
        EXPECT_EQ(SamplerChain(SamplingParams{}).run(r.l, none, 0.0), r.want) << what << ": the host chain is not max_element";
        for (float temperature : {0.0f, -1.0f})
            for (float penalty : {1.0f, 1.3f, 0.5f})
                for (int threads : {1, 3}) {
                    SamplingParams p;
                    p.temperature = temperature;
                    p.repeat_penalty = penalty;
                    const int32_t want = SamplerChain(p).run(r.l, history, 0.0);
                    if (penalty == 1.0f) {
                        EXPECT_EQ(want, r.want) << what;
                    }
                    EXPECT_EQ(KernelOnHost(r.l, history, threads, 2048)(p, 0.0), want)
                        << what << " temperature " << temperature << " penalty " << penalty << " threads " << threads;
                }
    }
    for (Shape s : {Shape::nan_first, Shape::nan_scattered, Shape::nan_ties, Shape::all_nan})
        for (int threads : {1, 3}) expect_kernel_matches_chain(s, 1003, threads, 2048, 0);
}

// The top_k kernel's passes (backend/cuda/top_k.cu) as it runs them: pass r takes the smallest top_k_key after the
// previous pass's key.
std::vector<int32_t> top_k_by_key(const std::vector<float>& l, int k) {
    std::vector<int32_t> ids;
    uint64_t prev = 0;
    for (int r = 0; r < k; ++r) {
        uint64_t best = sc::kNone;
        for (size_t i = 0; i < l.size(); ++i) {
            const uint64_t key = sc::top_k_key(l[i], static_cast<uint32_t>(i));
            if ((r == 0 || key > prev) && key < best) best = key;
        }
        ids.push_back(static_cast<int32_t>(best & 0xFFFFFFFFu));
        prev = best;
    }
    return ids;
}

// The top_k kernel's order against its twin, CpuBackend::top_k: the same ids (and so the same logit bits) on rows
// without NaNs for k = 1, 2, 40 and the whole row; with NaNs, k = 1 is the twin's std::max_element (a NaN in slot 0
// wins, the others never do), and any k gives k distinct valid ids, the non-NaN ones first in the twin's order (the
// twin's partial_sort is not defined on NaNs); a row of NaNs gives 0, 1, 2, ... (the kernel returned INT_MAX for it).
TEST(SampleKernelOnHost, TopKKeyOrder) {
    auto cpu = make_cpu_backend(1);
    auto twin = [&](const std::vector<float>& l, int k) {
        Tensor t = cpu->alloc(GgmlType::F32, 1, static_cast<int64_t>(l.size()));
        cpu->upload(l.data(), t);
        return cpu->top_k(t, k, false).ids;
    };
    for (Shape s : {Shape::random, Shape::ties, Shape::near_ties, Shape::with_neg_inf, Shape::four_equal, Shape::all_neg_inf, Shape::pos_inf})
        for (int64_t n : {1003, 7})
            for (int k : {1, 2, 40, static_cast<int>(n)}) {
                if (k > n) continue;
                const auto l = make_logits(s, n, 5 + static_cast<uint64_t>(n));
                EXPECT_EQ(top_k_by_key(l, k), twin(l, k)) << name(s) << " vocab " << n << " k " << k;
            }
    const float nan = NAN, inf = INFINITY;
    std::vector<std::vector<float>> rows{{nan, 1, 2}, {1, nan, 2}, {nan, nan}, {nan}, {1, nan}, {nan, -inf}, {-inf, nan, -inf}, {-0.0f, nan, 0.0f},
                                         {2, nan, 2}, {0, nan, 3, nan, 3}, {-inf, -inf, nan, 5, inf, nan, inf}, {-inf, nan, nan, nan, -1}};
    for (Shape s : {Shape::nan_first, Shape::nan_scattered, Shape::nan_ties, Shape::all_nan}) rows.push_back(make_logits(s, 1003, 9));
    for (const auto& l : rows) {
        const int n = static_cast<int>(l.size());
        const std::string what = "row of " + std::to_string(n) + " starting " + std::to_string(l[0]);
        EXPECT_EQ(top_k_by_key(l, 1), twin(l, 1)) << what;
        const std::vector<int32_t> all = top_k_by_key(l, n);
        std::vector<int32_t> sorted = all;
        std::sort(sorted.begin(), sorted.end());
        for (int i = 0; i < n; ++i) ASSERT_EQ(sorted[static_cast<size_t>(i)], i) << what << ": the ids are not 0..n-1 once each";
        // the non-NaN entries (slot 0 aside) in the twin's order, then the NaNs by id
        std::vector<int32_t> want;
        if (std::isnan(l[0])) want.push_back(0);
        std::vector<int32_t> finite;
        for (int i = 0; i < n; ++i)
            if (!std::isnan(l[static_cast<size_t>(i)])) finite.push_back(i);
        std::stable_sort(finite.begin(), finite.end(), [&](int32_t a, int32_t b) { return l[static_cast<size_t>(a)] > l[static_cast<size_t>(b)]; });
        want.insert(want.end(), finite.begin(), finite.end());
        for (int i = 1; i < n; ++i)
            if (std::isnan(l[static_cast<size_t>(i)])) want.push_back(i);
        EXPECT_EQ(all, want) << what;
    }
}

// The top_k kernel's log-normalizer (backend/cuda/top_k.cu) as it computes it: the first pass's logit as the max, the
// fused head's terms (head_top_k_logic.cuh) summed, then max + log(sum).
double top_k_log_norm(const std::vector<float>& l) {
    namespace ht = winnow::cuda::head_top_k;
    const float mx = l[static_cast<size_t>(top_k_by_key(l, 1)[0])];
    double s = 0;
    for (float v : l) s += ht::exp_term(v, mx);
    return ht::log_norm(mx, s);
}

// A row of -inf has log Z = -inf, the log of an empty sum, as the fused head gives it (exp(-inf - -inf) made it NaN);
// a NaN anywhere gives NaN, as the twin does; other rows, -inf entries included, agree with the twin to rounding.
TEST(SampleKernelOnHost, TopKLogNormOfMinusInfAndNaNRows) {
    for (int64_t n : {1, 7, 1003}) EXPECT_EQ(top_k_log_norm(make_logits(Shape::all_neg_inf, n, 3)), -INFINITY) << "vocab " << n;
    const float nan = NAN, inf = INFINITY;
    for (const std::vector<float>& l : std::vector<std::vector<float>>{{-inf, nan}, {nan, -inf}, {nan, 1}, {1, nan}, {-inf, -inf, nan, 2}})
        EXPECT_TRUE(std::isnan(top_k_log_norm(l))) << "row of " << l.size() << " starting " << l[0];
    for (Shape s : {Shape::nan_first, Shape::nan_scattered, Shape::all_nan})
        EXPECT_TRUE(std::isnan(top_k_log_norm(make_logits(s, 1003, 9)))) << name(s);
    auto cpu = make_cpu_backend(1);
    for (Shape s : {Shape::random, Shape::ties, Shape::with_neg_inf, Shape::four_equal}) {
        const auto l = make_logits(s, 1003, 4);
        Tensor t = cpu->alloc(GgmlType::F32, 1, static_cast<int64_t>(l.size()));
        cpu->upload(l.data(), t);
        const double want = cpu->top_k(t, 1, true).log_norm;
        EXPECT_NEAR(top_k_log_norm(l), want, 1e-12 * std::max(1.0, std::fabs(want))) << name(s);
    }
}

// The bisection on sets in fast memory too (WINNOW_CUDA_SAMPLE_SLICES=0 runs it there: sorted_max 0), whose sums run
// in a fixed tree where the sorted walk adds as the host does.
TEST(SampleKernelOnHost, BisectionOnSmallSetsMatchesTheChain) {
    Split bisection;
    bisection.sorted_max = 0;
    for (Shape s : {Shape::random, Shape::ties, Shape::four_equal}) expect_kernel_matches_chain(s, 1003, 1, 2048, 6, bisection);
    for (Shape s : {Shape::ties, Shape::four_equal}) expect_kernel_matches_chain(s, 7, 1, 2048, 6, bisection);
}

// Three threads: strided loops, every block-wide value reduced, the penalty's marks set and cleared concurrently.
TEST(SampleKernelOnHost, ThreeThreadsMatchTheChain) {
    for (Shape s : {Shape::ties, Shape::near_ties}) expect_kernel_matches_chain(s, 1003, 3, 2048, 2);
    expect_kernel_matches_chain(Shape::random, 1003, 3, 0, 2);
}

// The kernel's grid on the host: slices of 96 logits (11 for a vocabulary of 1003, the last one short) whose first
// passes run one after another, then the finish: greedy from the slices' maxima, the penalty split over the slices,
// and top-k up to 64 on the slices' candidates (the harness's top_k 1, 7, 40 and 50), which every shape must take.
TEST(SampleKernelOnHost, SlicesMatchTheChain) {
    const Split slices{96, 64, 128};
    for (Shape s : {Shape::random, Shape::ties, Shape::near_ties, Shape::with_neg_inf, Shape::merged_by_temperature, Shape::four_equal,
                    Shape::all_neg_inf, Shape::pos_inf}) {
        const auto paths = expect_kernel_matches_chain(s, 1003, 1, 2048, 3, slices);
        EXPECT_GT(paths.candidates, 0) << name(s) << ": no top-k call ran on the slices' candidates";
        EXPECT_EQ(paths.whole_vocabulary, 0) << name(s) << ": a slice of 96 overflowed 128 slots";
    }
    for (Shape s : {Shape::nan_first, Shape::nan_scattered, Shape::nan_ties, Shape::all_nan})
        for (int threads : {1, 3}) expect_kernel_matches_chain(s, 1003, threads, 2048, 0, slices);
    expect_kernel_matches_chain(Shape::ties, 1003, 3, 2048, 2, slices);
    expect_kernel_matches_chain(Shape::random, 1003, 3, 0, 2, slices); // the candidates searched where they lie
    expect_kernel_matches_chain(Shape::ties, 100, 1, 2048, 3, Split{32, 64, 128}); // slices shorter than top_k 40 / 50
    expect_kernel_matches_chain(Shape::ties, 7, 1, 2048, 6, slices);               // one short slice
}

// A slice whose candidates (ties at its cut, or a top_k above its slots) overflow its slots sends the finish back to
// the whole vocabulary, with the same answers.
TEST(SampleKernelOnHost, SlicesOverflowingTheirSlotsFallBackToTheWholeVocabulary) {
    for (Shape s : {Shape::ties, Shape::random}) {
        const auto paths = expect_kernel_matches_chain(s, 1003, 1, 2048, 3, Split{96, 64, 41});
        EXPECT_GT(paths.whole_vocabulary, 0) << name(s) << ": no slice overflowed 41 slots";
        EXPECT_GT(paths.candidates, 0) << name(s) << ": every top-k call overflowed";
    }
}

// The kernel's own split on SmolLM2's vocabulary: 24 slices of 2,048, top_k up to 64 on at most 128 candidates a slice.
TEST(SampleKernelOnHost, TheKernelsSplitOnTheSmolLm2Vocabulary) {
    for (Shape s : {Shape::random, Shape::ties}) {
        const auto paths = expect_kernel_matches_chain(s, 49152, 1, 2048, 1, Split{2048, 64, 128});
        EXPECT_GT(paths.candidates, 0) << name(s);
    }
}

} // namespace
