// The persistent AdaptiveSoftmax query kernel (design: adaptive_persistent.h). GridSteps is the executor the control
// flow (adaptive_control.cuh) calls in every thread of the cooperative grid; each of its steps is the host-driven
// kernels' per-arm logic (adaptive_warmup_logic.cuh, adaptive_rounds_logic.cuh, adaptive_norm_logic.cuh, linear's
// warp dot product) over the block's chunks of arms, followed by a grid barrier, and every step returns the same value
// in every thread. Written blind, for correctness first: every reduction meets the whole grid; warp 0 of each block
// reads all blocks' partials and shares the result through shared memory; a pass that ends in a reduction also answers
// the control's next question (the speculation below), which is what keeps the barrier count down. Twin: the
// host-driven query over the same kernels (DeviceQuerySteps) and, through it, HostQuerySteps.
#include "backend/cuda/launch.cuh"
#include "backend/cuda/adaptive_persistent.h"

#include <string>

#include "backend/cuda/adaptive_block_sum.cuh"
#include "backend/cuda/adaptive_exact_row.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/gemv_row.cuh"
#include "backend/cuda/grid_sync.cuh"
#include "backend/cuda/shared_memory.cuh"
#include "winnow/error.h"

namespace winnow::cuda::adaptive {

namespace {

constexpr int kWarps = kPersistentThreads / 32;
constexpr unsigned kFull = 0xffffffffu;
// dynamic shared memory: the warps' partials and the grid's combined one (broadcast to the block), then the warps'
// doubles of block_sum_in_order and the two grid-wide sums (broadcast)
constexpr size_t kSharedBytes = (kWarps + 1) * sizeof(BlockPartial) + (kWarps + 2) * sizeof(double);

__device__ BlockPartial combine(BlockPartial a, const BlockPartial& b) {
    a.key = max(a.key, b.key);
    a.first = min(a.first, b.first);
    a.count += b.count;
    a.all_exact &= b.all_exact;
    a.max_key = max(a.max_key, b.max_key);
    a.set_count += b.set_count;
    a.set_min_T = min(a.set_min_T, b.set_min_T);
    a.set_max_var_key = max(a.set_max_var_key, b.set_max_var_key);
    if (b.group_from < a.group_from) a.group_from = b.group_from, a.group_count = b.group_count; // (min, count at the min)
    else if (b.group_from == a.group_from) a.group_count += b.group_count;
    return a;
}

__device__ BlockPartial shuffle_xor(const BlockPartial& p, int o) {
    BlockPartial q;
    q.key = __shfl_xor_sync(kFull, p.key, o);
    q.first = __shfl_xor_sync(kFull, p.first, o);
    q.count = __shfl_xor_sync(kFull, p.count, o);
    q.all_exact = __shfl_xor_sync(kFull, p.all_exact, o);
    q.max_key = __shfl_xor_sync(kFull, p.max_key, o);
    q.set_count = __shfl_xor_sync(kFull, p.set_count, o);
    q.set_min_T = __shfl_xor_sync(kFull, p.set_min_T, o);
    q.set_max_var_key = __shfl_xor_sync(kFull, p.set_max_var_key, o);
    q.group_from = __shfl_xor_sync(kFull, p.group_from, o);
    q.group_count = __shfl_xor_sync(kFull, p.group_count, o);
    return q;
}

// Arm (var, T) of a set in its SetStats (set_stats_arm's count, min T and largest variance short of d'). The
// threshold test is left out: "some arm has var > thr and T < d'" holds exactly when that largest variance is > thr
// (NaN variances are in neither), so one pass serves every threshold.
__device__ void add_stats(BlockPartial& p, float var, int32_t T, int dp) {
    p.set_count += 1;
    p.set_min_T = min(p.set_min_T, T);
    if (T < dp) p.set_max_var_key = max(p.set_max_var_key, max_key(var));
}

// Arm T of a set in advance()'s group below target.
__device__ void add_group(BlockPartial& p, int32_t T, int target) {
    if (T >= target) return;
    if (T < p.group_from) p.group_from = T, p.group_count = 1;
    else if (T == p.group_from) p.group_count += 1;
}

template <GgmlType W>
class GridSteps {
public:
    __device__ GridSteps(const PersistentQuery& q, BlockPartial* warp_partials, double* warp_sums)
        : q_(q), n_(q.constants.n), dp_(q.constants.dp), warp_partials_(warp_partials), warp_sums_(warp_sums) {
        for (int s = 0; s < 4; ++s) sets_[s] = q.sets[s];
    }

    __device__ void warm_up(int from, int to, bool fresh) {
        forget();
        const uint8_t* all = set(ArmSet::all);
        BlockPartial p;
        for_arms(q_.stride, [&](int64_t i) {
            warm_up_arm(q_.layout, q_.order, q_.state, i, from, to, fresh, q_.beta);
            if (i < n_ && all[i]) add_stats(p, q_.state.var[i], q_.state.T[i], dp_);
        });
        remember_stats(all, reduce(p)); // the warm-up loop's next test
    }

    __device__ SetStats set_stats(ArmSet s, float thr) {
        const uint8_t* in = set(s);
        if (stats_of_ != in) {
            BlockPartial p;
            for_arms(n_, [&](int64_t i) {
                if (in[i]) add_stats(p, q_.state.var[i], q_.state.T[i], dp_);
            });
            remember_stats(in, reduce(p));
        }
        last_stats_set_ = in;
        SetStats st;
        st.count = stats_.set_count, st.min_T = stats_.set_min_T, st.max_var_key = stats_.set_max_var_key;
        st.failing = max_from_key(st.max_var_key) > thr ? 1 : 0;
        return st;
    }

    // advance()'s next group: the smallest prefix below target and its count, then its arms marked (each thread its
    // own arms, which only it streams) and listed for the exact rows (list order free; exact_marked waits for it).
    __device__ Group mark_group(ArmSet s, int target) {
        const uint8_t* in = set(s);
        const int32_t* T = q_.state.T;
        if (group_of_ != in || group_target_ != target) {
            BlockPartial p;
            for_arms(n_, [&](int64_t i) {
                if (in[i]) add_group(p, T[i], target);
            });
            remember_group(in, target, reduce(p));
        }
        last_group_set_ = in, last_group_target_ = target;
        Group g = group_;
        // from = kNoArm. The active words are left as they are (the host-driven kernel zeroes them): only
        // stream_marked reads them, and only after a mark of a nonempty group, which writes all of them.
        if (g.count == 0) return g;
        int32_t* counter = q_.list_counts + (step_ & 1); // zeroed at the last scratch barrier, unused since
        for_arms(n_, [&](int64_t i) {
            const bool mine = in[i] && T[i] == g.from;
            q_.active[i] = mine ? -1 : 0;
            if (mine) q_.list[atomicAdd(counter, 1)] = static_cast<int32_t>(i);
        });
        return g;
    }

    // The marked arms through [from, to), and in the same pass the control's next questions: the next group of the
    // set being advanced (below the same target) and the statistics of the set last asked about.
    __device__ void stream_marked(int from, int to) {
        const uint8_t* stats_set = last_stats_set_;
        const uint8_t* group_set = last_group_set_;
        const int target = last_group_target_;
        forget();
        const int32_t* T = q_.state.T;
        BlockPartial p;
        for_arms(n_, [&](int64_t i) {
            stream_masked_arm(q_.layout, q_.order, q_.state, q_.active, i, from, to, q_.beta);
            if (stats_set && stats_set[i]) add_stats(p, q_.state.var[i], T[i], dp_);
            if (group_set && group_set[i]) add_group(p, T[i], target);
        });
        const BlockPartial r = reduce(p);
        if (stats_set) remember_stats(stats_set, r);
        if (group_set) remember_group(group_set, target, r);
    }

    __device__ void exact_marked(int count) {
        forget();
        grid_sync(); // the list is complete (mark_group's appends)
        const int lane = threadIdx.x % 32;
        for (int w = blockIdx.x * kWarps + threadIdx.x / 32; w < count; w += gridDim.x * kWarps) exact_row(q_.list[w], lane); // warp-uniform
        grid_sync();
    }

    __device__ void reset_candidates() {
        forget();
        uint8_t* c = set(ArmSet::candidates);
        const uint8_t* all = set(ArmSet::all);
        BlockPartial p;
        for_arms(n_, [&](int64_t i) {
            c[i] = all[i];
            if (c[i]) add_stats(p, q_.state.var[i], q_.state.T[i], dp_);
        });
        remember_stats(c, reduce(p)); // pull_to_var's first question
    }

    // adaptive_rounds.cu's two passes: the first candidate and the argmax key, then the keep flags and their count.
    __device__ RoundResult eliminate_round(float width2) {
        const uint8_t* in = set(ArmSet::candidates);
        uint8_t* keep = set(ArmSet::kept);
        const float *mu = q_.state.mu, *var = q_.state.var;
        BlockPartial p;
        for_arms(n_, [&](int64_t i) {
            if (!in[i]) return;
            p.first = min(p.first, static_cast<int32_t>(i));
            p.key = max(p.key, best_key(mu[i], i));
        });
        forget(); // after the loop above has read the candidates: the keep flags below change the kept set
        const BlockPartial b = reduce(p);
        RoundResult r;
        r.first = b.first, r.key = b.key;
        r.best = pick_best(r.first, r.key, mu);
        if (r.best >= 0) r.floor_b = best_floor(mu[r.best], var[r.best], width2);
        BlockPartial k;
        for_arms(n_, [&](int64_t i) {
            const bool kept = r.best >= 0 && in[i] && keep_arm(mu[i], var[i], r.floor_b, width2);
            keep[i] = kept;
            if (!kept) return;
            ++k.count, k.all_exact &= q_.state.T[i] >= dp_ ? 1 : 0;
            add_stats(k, var[i], q_.state.T[i], dp_);
        });
        const BlockPartial kk = reduce(k);
        remember_stats(keep, kk); // the survivors become the candidates: the next round's first question
        r.kept = kk.count, r.all_exact = kk.all_exact;
        return r;
    }

    __device__ void keep_survivors() { // every thread swaps its own copy of the two pointers, alike
        uint8_t* t = sets_[static_cast<int>(ArmSet::candidates)];
        sets_[static_cast<int>(ArmSet::candidates)] = sets_[static_cast<int>(ArmSet::kept)];
        sets_[static_cast<int>(ArmSet::kept)] = t;
    }
    __device__ int32_t arm_T(int32_t i) const { return q_.state.T[i]; }
    __device__ float arm_mu(int32_t i) const { return q_.state.mu[i]; }
    // The first barrier: every thread has read arm_T(i) (the control's test for calling this) before T[i] changes; a
    // thread of another block that read the new T would skip this step and its barriers, and the grid would hang.
    __device__ void exact_arm(int32_t i) {
        forget();
        grid_sync();
        if (blockIdx.x == 0 && threadIdx.x < 32) exact_row(i, static_cast<int>(threadIdx.x));
        grid_sync();
    }

    __device__ NormSums norm_weights(float c2) {
        last_stats_set_ = nullptr; // the normalizer asks no set statistics: its streams need not carry them
        const float *mu = q_.state.mu, *var = q_.state.var;
        BlockPartial p;
        for_arms(n_, [&](int64_t i) { p.max_key = max(p.max_key, max_key(log_alpha(mu[i], var[i], c2))); });
        NormSums s;
        s.la_max = max_from_key(reduce(p).max_key);
        const int64_t chunks = norm_blocks(n_);
        double* sums = q_.sums + (step_ & 1) * 2 * chunks;
        for (int64_t c = blockIdx.x; c < chunks; c += gridDim.x) { // block-uniform: the sums' barriers see the whole block
            const int64_t i = c * kPersistentThreads + threadIdx.x;
            double ve = 0, vg = 0;
            if (i < n_) {
                const float w = norm_weight(log_alpha(mu[i], var[i], c2), s.la_max);
                q_.e[i] = w;
                ve = w;
                vg = sqrt_rn(w);
            }
            const double pe = block_sum_in_order(ve, warp_sums_);
            const double pg = block_sum_in_order(vg, warp_sums_);
            if (threadIdx.x == 0) sums[c] = pe, sums[chunks + c] = pg;
        }
        scratch_sync();
        if (threadIdx.x == 0) warp_sums_[kWarps] = add_partials(sums, chunks), warp_sums_[kWarps + 1] = add_partials(sums + chunks, chunks);
        __syncthreads();
        s.sum_e = warp_sums_[kWarps];
        s.sum_g = warp_sums_[kWarps + 1];
        return s;
    }

    __device__ int32_t norm_filter(bool first, double f, double a, double b) {
        forget();
        uint8_t* todo = set(ArmSet::todo);
        BlockPartial p;
        for_arms(n_, [&](int64_t i) {
            const bool flag = (first || todo[i]) && norm_fails(q_.e[i], q_.state.var[i], q_.state.T[i], dp_, f, a, b);
            todo[i] = flag;
            p.count += flag ? 1 : 0;
        });
        return reduce(p).count;
    }

    __device__ SumExp sum_exp_mu() {
        const float* mu = q_.state.mu;
        BlockPartial p;
        for_arms(n_, [&](int64_t i) { p.max_key = max(p.max_key, max_key(mu[i])); });
        SumExp s;
        s.max = max_from_key(reduce(p).max_key);
        const int64_t chunks = norm_blocks(n_);
        double* sums = q_.sums + (step_ & 1) * 2 * chunks;
        for (int64_t c = blockIdx.x; c < chunks; c += gridDim.x) {
            const int64_t i = c * kPersistentThreads + threadIdx.x;
            const double t = i < n_ ? static_cast<double>(exp_f(sub_rn(mu[i], s.max))) : 0.0;
            const double sum = block_sum_in_order(t, warp_sums_);
            if (threadIdx.x == 0) sums[c] = sum;
        }
        scratch_sync();
        if (threadIdx.x == 0) warp_sums_[kWarps] = add_partials(sums, chunks);
        __syncthreads();
        s.sum = warp_sums_[kWarps];
        return s;
    }

private:
    __device__ uint8_t* set(ArmSet s) const { return sets_[static_cast<int>(s)]; }

    // Speculation: a pass that ends in a reduction anyway also answers the question the control asks next, so that
    // question costs no barrier of its own. An answer is kept with the set (by address: keep_survivors' swap carries
    // it along) and, for a group, the target it was computed for; every step that changes flags, prefixes or
    // variances forgets both first. Every thread keeps the same answers, as it makes the same calls.
    __device__ void forget() { stats_of_ = nullptr, group_of_ = nullptr; }
    __device__ void remember_stats(const uint8_t* in, const BlockPartial& r) { stats_of_ = in, stats_ = r; }
    __device__ void remember_group(const uint8_t* in, int target, const BlockPartial& r) {
        group_of_ = in, group_target_ = target;
        group_.from = r.group_from, group_.count = r.group_count;
    }

    // f(i) for the arms i < count of this block's chunks.
    template <class F>
    __device__ void for_arms(int64_t count, F&& f) const {
        for (int64_t c = blockIdx.x; c * kPersistentThreads < count; c += gridDim.x) {
            const int64_t i = c * kPersistentThreads + threadIdx.x;
            if (i < count) f(i);
        }
    }

    // Arm i's exact logit by the calling warp (the host-driven exact_rows_kernel's helper, so the same bits).
    __device__ void exact_row(int32_t i, int lane) {
        exact_row_by_warp<W>(q_.rows, q_.row_bytes, q_.d, q_.x, i, q_.beta, dp_, q_.state.mu, q_.state.var, q_.state.T, lane);
    }

    // The grid barrier after scratch (partials, sums) was written: the next step writes the other slot. The list
    // counter of that slot is zeroed here, before the barrier: its last atomics came before the previous scratch barrier.
    __device__ void scratch_sync() {
        if (blockIdx.x == 0 && threadIdx.x == 0) q_.list_counts[(step_ & 1) ^ 1] = 0;
        grid_sync();
        ++step_;
    }

    // Every thread's partial combined over the grid: the same value in every thread.
    __device__ BlockPartial reduce(BlockPartial p) {
        for (int o = 16; o > 0; o >>= 1) p = combine(p, shuffle_xor(p, o));
        if (threadIdx.x % 32 == 0) warp_partials_[threadIdx.x / 32] = p;
        __syncthreads();
        BlockPartial* slot = q_.partials + (step_ & 1) * gridDim.x;
        if (threadIdx.x == 0) {
            for (int w = 1; w < kWarps; ++w) p = combine(p, warp_partials_[w]);
            slot[blockIdx.x] = p;
        }
        scratch_sync(); // also orders warp_partials_' reads before the next reduction's writes
        // warp 0 combines the grid's partials (every operation is order-free) and leaves the result for the block
        if (threadIdx.x < 32) {
            BlockPartial r;
            for (unsigned b = threadIdx.x; b < gridDim.x; b += 32) r = combine(r, slot[b]);
            for (int o = 16; o > 0; o >>= 1) r = combine(r, shuffle_xor(r, o));
            if (threadIdx.x == 0) warp_partials_[kWarps] = r;
        }
        __syncthreads();
        return warp_partials_[kWarps];
    }

    const PersistentQuery& q_;
    const int64_t n_;
    const int dp_;
    uint8_t* sets_[4];
    // Shared memory. The broadcast slots (warp_partials_[kWarps], warp_sums_[kWarps ..]) are written again only after
    // the next grid barrier, which every reader of the last value has passed: no second __syncthreads is needed.
    BlockPartial* warp_partials_;
    double* warp_sums_;
    unsigned step_ = 0; // scratch barriers passed: the same count in every thread
    const uint8_t* stats_of_ = nullptr; // the set stats_ describes (null: none)
    BlockPartial stats_;
    const uint8_t* group_of_ = nullptr; // the set group_ belongs to (null: none), below group_target_
    int group_target_ = 0;
    Group group_;
    const uint8_t* last_stats_set_ = nullptr; // the last set_stats' and mark_group's questions, asked again after a stream
    const uint8_t* last_group_set_ = nullptr;
    int last_group_target_ = 0;
};

// 2 blocks per multiprocessor at least (at most 128 registers): the grid limit is then 264 blocks on an H200, more
// than SmolLM2's 192 chunks. The parameter is read in place (__grid_constant__): GridSteps keeps a reference to it,
// which would otherwise copy it to every thread's local memory.
template <GgmlType W>
__global__ void __launch_bounds__(kPersistentThreads, 2) persistent_query_kernel(const __grid_constant__ PersistentQuery q) {
    WINNOW_DYNAMIC_SHARED(unsigned char, smem);
    GridSteps<W> steps(q, reinterpret_cast<BlockPartial*>(smem), reinterpret_cast<double*>(smem + (kWarps + 1) * sizeof(BlockPartial)));
    QueryControl<GridSteps<W>> control(steps, q.constants);
    control.warm_up();
    control.eliminate();
    const ControlFinish f = control.finish();
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        q.result->finish = f;
        q.result->cost = control.cost();
    }
}

} // namespace

int persistent_grid_limit(GgmlType type) {
    int limit = -1;
    dispatch_core_weight_type(type, [&]<GgmlType W>() { limit = cooperative_grid_limit(persistent_query_kernel<W>, kPersistentThreads, kSharedBytes); });
    if (limit < 0) throw Error(ErrorKind::invalid_argument, "adaptive head (cuda): exact rows of this weight type are not supported");
    return limit;
}

void launch_persistent_query(const PersistentQuery& q, int blocks, cudaStream_t stream) {
    if (q.constants.n >= kNoArm) throw Error(ErrorKind::invalid_argument, "persistent query: " + std::to_string(q.constants.n) + " arms (at most 2^31 - 2)");
    WINNOW_CUDA_CHECK(cudaMemsetAsync(q.list_counts, 0, 2 * sizeof(int32_t), stream));
    bool launched = false;
    dispatch_core_weight_type(q.row_type, [&]<GgmlType W>() {
        launch_cooperative(persistent_query_kernel<W>, static_cast<unsigned>(blocks), kPersistentThreads, kSharedBytes, stream, q);
        launched = true;
    });
    if (!launched) throw Error(ErrorKind::invalid_argument, "adaptive head (cuda): exact rows of this weight type are not supported");
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess)
        throw Error(ErrorKind::io, std::string("adaptive head (cuda): the persistent query's cooperative launch of ") + std::to_string(blocks) +
                                       " blocks failed: " + cudaGetErrorString(err));
}

} // namespace winnow::cuda::adaptive
