// The GPU AdaptiveSoftmax's device executor and head (adaptive_head_gpu.h). Host code (C++20: it reads
// head::ColumnMajorHead); the kernels it launches are in adaptive_warmup.cu, adaptive_rounds.cu and adaptive_head_gpu.cu.
// Every step runs in the head's own stream; a step whose result the driver needs copies it back and waits for it (the
// first version's one small copy per decision, see adaptive_query.h).
#include "backend/cuda/adaptive_head_gpu.h"

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "backend/cuda/adaptive_head_kernels.h"
#include "backend/cuda/adaptive_persistent.h"
#include "backend/cuda/adaptive_rounds.h"
#include "backend/cuda/adaptive_warmup.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device.h"
#include "winnow/error.h"

namespace winnow::cuda::adaptive {

// The scratch the reductions write and the host reads back (RoundResult first: its 64-bit key needs 8-byte alignment,
// which cudaMalloc's 256-byte alignment gives). Not in an anonymous namespace: DeviceQuerySteps, declared in the
// header, holds a pointer to it.
struct AdaptiveStepScratch {
    RoundResult round;
    SetStats stats;
    Group group;
    uint32_t max_key = 0;
    int32_t count = 0;
};

class DeviceQuerySteps final : public QuerySteps {
public:
    explicit DeviceQuerySteps(const head::ColumnMajorHead& H) : H_(H), n_(H.n()), stride_(H.stride()), d_(H.d()) {
        WINNOW_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        upload_layout();
        upload_rows();
        const size_t fb = sizeof(float) * stride_;
        K_ = alloc<float>(stride_), Z_ = alloc<float>(stride_), Z2_ = alloc<float>(stride_), mu_ = alloc<float>(stride_), var_ = alloc<float>(stride_);
        T_ = alloc<int32_t>(stride_);
        WINNOW_CUDA_CHECK(cudaMemset(T_, 0, fb));
        e_ = alloc<float>(n_);
        active_ = alloc<int32_t>(n_), list_ = alloc<int32_t>(n_);
        for (uint8_t*& s : sets_) s = alloc<uint8_t>(n_);
        WINNOW_CUDA_CHECK(cudaMemset(sets_[static_cast<int>(ArmSet::all)], 1, n_));
        for (ArmSet s : {ArmSet::candidates, ArmSet::kept, ArmSet::todo}) WINNOW_CUDA_CHECK(cudaMemset(set(s), 0, n_));
        col_ = alloc<int32_t>(d_), blk_ = alloc<int32_t>(d_), xs_ = alloc<float>(d_), coef_ = alloc<float>(d_), x_ = alloc<float>(d_);
        scratch_ = alloc<AdaptiveStepScratch>(1);
        partials_ = alloc<double>(4 * norm_blocks(n_)); // the persistent query's two slots; the host-driven steps use the first
        persistent_limit_ = persistent_grid_limit(row_type_);
        persistent_partials_ = alloc<BlockPartial>(2 * static_cast<size_t>(std::max(1, persistent_limit_)));
        list_counts_ = alloc<int32_t>(2);
        persistent_result_ = alloc<PersistentResult>(1);
        host_partials_.resize(2 * norm_blocks(n_));
        // The memsets above run on the legacy stream, asynchronously to the host, and a copy from pageable memory may
        // return before its DMA ends; stream_ is non-blocking, so its first kernels would not wait for either.
        // (Noticed in helper-33's review of the SIMT emulator, which runs stream work at once and cannot show it.)
        WINNOW_CUDA_CHECK(cudaDeviceSynchronize());
    }
    ~DeviceQuerySteps() override = default; // owned_ frees the buffers, then the stream goes (declaration order)

    void begin_query(const QueryOrder& order, std::span<const float> x, float beta) override {
        dp_ = order.dp;
        beta_ = beta;
        // pageable sources: each copy has been taken from them when the call returns
        copy_in(col_, order.col, dp_), copy_in(blk_, order.blk, dp_), copy_in(xs_, order.xs, dp_), copy_in(coef_, order.coef, dp_);
        // the exact rows read the stored head with the query in the model's basis: a rotated head's query (y = R^T x)
        // is turned back on the host (x = R y, ColumnMajorHead::prepare_exact, the CPU path's values)
        if (H_.rotated()) {
            H_.prepare_exact(x, exact_x_);
            copy_in(x_, exact_x_.x.data(), exact_x_.x.size());
        } else {
            copy_in(x_, x.data(), x.size());
        }
        order_ = {col_, blk_, xs_, coef_, dp_};
    }
    void warm_up(int from, int to, bool fresh) override { launch_warm_up(layout_, order_, state(), stride_, from, to, fresh, beta_, stream_); }
    SetStats set_stats(ArmSet s, float thr) override {
        launch_set_stats(set(s), var_, T_, n_, thr, dp_, &scratch_->stats, stream_);
        return fetch(&scratch_->stats);
    }
    Group mark_group(ArmSet s, int target) override {
        launch_mark_group(set(s), T_, n_, target, active_, list_, &scratch_->group, stream_);
        return fetch(&scratch_->group);
    }
    void stream_marked(int from, int to) override { launch_stream_masked(layout_, order_, state(), active_, n_, from, to, beta_, stream_); }
    void exact_marked(int count) override {
        launch_exact_rows(row_type_, rows_, row_bytes_, d_, x_, list_, count, beta_, dp_, mu_, var_, T_, stream_);
    }
    void reset_candidates() override {
        WINNOW_CUDA_CHECK(cudaMemcpyAsync(set(ArmSet::candidates), set(ArmSet::all), n_, cudaMemcpyDeviceToDevice, stream_));
    }
    RoundResult eliminate_round(float width2) override {
        launch_eliminate_round(mu_, var_, T_, set(ArmSet::candidates), set(ArmSet::kept), n_, dp_, width2, &scratch_->round, stream_);
        return fetch(&scratch_->round);
    }
    void keep_survivors() override { std::swap(sets_[static_cast<int>(ArmSet::candidates)], sets_[static_cast<int>(ArmSet::kept)]); }
    int32_t arm_T(int32_t i) override { return fetch(T_ + i); }
    float arm_mu(int32_t i) override { return fetch(mu_ + i); }
    void exact_arm(int32_t i) override {
        copy_in(list_, &i, 1);
        exact_marked(1);
    }
    NormSums norm_weights(float c2) override {
        launch_norm_weights(mu_, var_, n_, c2, e_, &scratch_->max_key, partials_, stream_);
        const int64_t blocks = norm_blocks(n_);
        NormSums s;
        s.la_max = max_from_key(fetch(&scratch_->max_key));
        fetch_partials(2 * blocks);
        s.sum_e = add_partials(host_partials_.data(), blocks);
        s.sum_g = add_partials(host_partials_.data() + blocks, blocks);
        return s;
    }
    int32_t norm_filter(bool first, double f, double a, double b) override {
        launch_norm_filter(first, e_, var_, T_, n_, dp_, f, a, b, set(ArmSet::todo), &scratch_->count, stream_);
        return fetch(&scratch_->count);
    }
    SumExp sum_exp_mu() override {
        launch_sum_exp(mu_, n_, &scratch_->max_key, partials_, stream_);
        SumExp s;
        s.max = max_from_key(fetch(&scratch_->max_key));
        fetch_partials(norm_blocks(n_));
        s.sum = add_partials(host_partials_.data(), norm_blocks(n_));
        return s;
    }
    // The whole query in one cooperative launch (adaptive_persistent.h) over this executor's buffers: blocks = the
    // grid (0: as many as the device holds at once, at most one per chunk of arms). One copy back, one wait. The kernel
    // swaps its own copies of the candidate and kept pointers, so sets_ may name those two buffers the other way round
    // afterwards: read_state() is meaningful after host-driven steps only (every query starts from reset_candidates).
    head::AdaptiveResult run_persistent(const PreparedQuery& pq, std::span<const float> x, float beta, int blocks) {
        if (persistent_limit_ <= 0)
            throw Error(ErrorKind::unsupported, "adaptive head (cuda): this device cannot launch the persistent query (no cooperative launch)");
        const int limit = static_cast<int>(std::min<int64_t>(persistent_limit_, norm_blocks(n_)));
        if (blocks <= 0) blocks = limit;
        if (blocks > limit)
            throw Error(ErrorKind::invalid_argument, "adaptive head (cuda): " + std::to_string(blocks) + " blocks for the persistent query, at most " +
                                                         std::to_string(limit) + " here");
        begin_query(pq.order(), x, beta);
        PersistentQuery q;
        q.layout = layout_, q.order = order_, q.state = state(), q.stride = stride_;
        q.row_type = row_type_, q.rows = rows_, q.row_bytes = row_bytes_, q.d = d_, q.x = x_, q.beta = beta;
        for (int s = 0; s < 4; ++s) q.sets[s] = sets_[s];
        q.active = active_, q.list = list_, q.e = e_;
        q.partials = persistent_partials_, q.sums = partials_, q.list_counts = list_counts_;
        q.constants = pq.constants;
        q.result = persistent_result_;
        launch_persistent_query(q, blocks, stream_);
        const PersistentResult r = fetch(persistent_result_);
        return query_result(r.finish, r.cost, pq.constants);
    }
    void read_state(std::vector<float>& mu, std::vector<float>& var, std::vector<int32_t>& T, std::vector<uint8_t>& candidates) override {
        mu.resize(n_), var.resize(n_), T.resize(n_), candidates.resize(n_);
        copy_out(mu.data(), mu_, n_), copy_out(var.data(), var_, n_), copy_out(T.data(), T_, n_), copy_out(candidates.data(), set(ArmSet::candidates), n_);
        WINNOW_CUDA_CHECK(cudaStreamSynchronize(stream_));
    }

private:
    template <class T>
    T* alloc(size_t count) {
        void* p = nullptr;
        WINNOW_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(count * sizeof(T), 1)));
        owned_.push_back(p);
        return static_cast<T*>(p);
    }
    template <class T>
    void copy_in(T* dst, const T* src, size_t count) {
        if (count) WINNOW_CUDA_CHECK(cudaMemcpyAsync(dst, src, count * sizeof(T), cudaMemcpyHostToDevice, stream_));
    }
    template <class T>
    void copy_out(T* dst, const T* src, size_t count) {
        if (count) WINNOW_CUDA_CHECK(cudaMemcpyAsync(dst, src, count * sizeof(T), cudaMemcpyDeviceToHost, stream_));
    }
    // A step's small result: copied back once the stream has reached it (the host waits here).
    template <class T>
    T fetch(const T* src) {
        T v;
        copy_out(&v, src, 1);
        WINNOW_CUDA_CHECK(cudaStreamSynchronize(stream_));
        return v;
    }
    void fetch_partials(int64_t count) {
        copy_out(host_partials_.data(), partials_, static_cast<size_t>(count));
        WINNOW_CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
    uint8_t* set(ArmSet s) { return sets_[static_cast<int>(s)]; }
    ArmState state() const { return {K_, Z_, Z2_, mu_, var_, T_}; }

    // The column-major copy as the CPU path holds it (quants + scales, or fp32), zero padding included.
    void upload_layout() {
        layout_.stride = stride_;
        if (H_.storage() == head::ColumnMajorHead::Storage::q8) {
            auto* q = alloc<int8_t>(static_cast<size_t>(d_) * stride_);
            auto* s = alloc<uint16_t>(static_cast<size_t>(d_ / 32) * stride_);
            WINNOW_CUDA_CHECK(cudaMemcpy(q, H_.quant_column(0), static_cast<size_t>(d_) * stride_, cudaMemcpyHostToDevice));
            WINNOW_CUDA_CHECK(cudaMemcpy(s, H_.scale_row(0), static_cast<size_t>(d_ / 32) * stride_ * 2, cudaMemcpyHostToDevice));
            layout_.quants = q, layout_.scales = s;
        } else {
            auto* f = alloc<float>(static_cast<size_t>(d_) * stride_);
            WINNOW_CUDA_CHECK(cudaMemcpy(f, H_.float_column(0), static_cast<size_t>(d_) * stride_ * 4, cudaMemcpyHostToDevice));
            layout_.values = f;
        }
    }
    // The stored rows for the exact finish; a type the warp dot product does not read goes up as fp32 rows (its
    // values exactly, ColumnMajorHead::dense(); the dot product then rounds unlike the CPU's vec_dot on that type).
    void upload_rows() {
        const Matrix& m = H_.rows();
        if (exact_rows_supported(m.type)) {
            row_type_ = m.type;
            row_bytes_ = m.row_bytes;
            rows_ = alloc<uint8_t>(m.row_bytes * n_);
            WINNOW_CUDA_CHECK(cudaMemcpy(rows_, m.data, m.row_bytes * n_, cudaMemcpyHostToDevice));
        } else {
            const std::vector<float> dense = H_.dense();
            row_type_ = GgmlType::F32;
            row_bytes_ = sizeof(float) * d_;
            rows_ = alloc<uint8_t>(row_bytes_ * n_);
            WINNOW_CUDA_CHECK(cudaMemcpy(rows_, dense.data(), row_bytes_ * n_, cudaMemcpyHostToDevice));
        }
    }

    const head::ColumnMajorHead& H_;
    head::ExactQuery exact_x_; // a rotated head's query turned back (the copy in begin_query reads it)
    int n_;
    int64_t stride_;
    int d_, dp_ = 0;
    float beta_ = 1.0f;
    // Members that release what the constructor took, so that a constructor throwing halfway leaks nothing: the
    // stream is destroyed after the buffers (members are destroyed in reverse order).
    struct OwnedStream {
        cudaStream_t s = nullptr;
        ~OwnedStream() { if (s) cudaStreamDestroy(s); }
    } owned_stream_;
    struct OwnedBuffers : std::vector<void*> {
        ~OwnedBuffers() { for (void* p : *this) cudaFree(p); }
    } owned_;
    cudaStream_t& stream_ = owned_stream_.s;
    ColumnLayout layout_;
    GgmlType row_type_ = GgmlType::F32;
    size_t row_bytes_ = 0;
    uint8_t* rows_ = nullptr;
    int32_t *col_ = nullptr, *blk_ = nullptr;
    float *xs_ = nullptr, *coef_ = nullptr, *x_ = nullptr;
    QueryOrder order_;
    float *K_ = nullptr, *Z_ = nullptr, *Z2_ = nullptr, *mu_ = nullptr, *var_ = nullptr, *e_ = nullptr;
    int32_t *T_ = nullptr, *active_ = nullptr, *list_ = nullptr;
    uint8_t* sets_[4] = {}; // indexed by ArmSet
    AdaptiveStepScratch* scratch_ = nullptr;
    double* partials_ = nullptr;
    int persistent_limit_ = 0; // the cooperative grid's limit for this head's row type (0: no cooperative launch)
    BlockPartial* persistent_partials_ = nullptr;
    int32_t* list_counts_ = nullptr;
    PersistentResult* persistent_result_ = nullptr;
    std::vector<double> host_partials_;
};

GpuAdaptiveHead::GpuAdaptiveHead(std::shared_ptr<const head::ColumnMajorHead> H) : H_(std::move(H)) {
    if (!H_) throw Error(ErrorKind::invalid_argument, "GpuAdaptiveHead: no head matrix");
    if (H_->row_clusters().k > 0) throw Error(ErrorKind::unsupported, "GpuAdaptiveHead: cluster-centred columns (row clusters) are CPU-only");
    if (device_count() == 0) throw Error(ErrorKind::invalid_argument, "GpuAdaptiveHead: no CUDA device on this machine");
    steps_ = std::make_unique<DeviceQuerySteps>(*H_);
}

GpuAdaptiveHead::~GpuAdaptiveHead() = default;

QuerySteps& GpuAdaptiveHead::steps() { return *steps_; }

QueryDriver GpuAdaptiveHead::begin(std::span<const float> x, const AdaptiveParams& p) {
    return QueryDriver(*H_, *steps_, x, p, head::query_noise_seed(p.seed, ++queries_));
}

QueryLoop default_query_loop() {
    const char* v = std::getenv("WINNOW_ADAPTIVE_LOOP");
    if (!v || std::string(v).empty() || std::string(v) == "persistent") return QueryLoop::persistent;
    if (std::string(v) == "host") return QueryLoop::host;
    throw Error(ErrorKind::invalid_argument, std::string("WINNOW_ADAPTIVE_LOOP must be host or persistent, not '") + v + "'");
}

head::AdaptiveResult GpuAdaptiveHead::run(std::span<const float> x, const AdaptiveParams& p, QueryLoop loop, int blocks) {
    if (loop == QueryLoop::automatic) loop = default_query_loop();
    if (loop == QueryLoop::host) return begin(x, p).run();
    const PreparedQuery q = prepare_query(*H_, x, p, head::query_noise_seed(p.seed, ++queries_));
    if (q.constants.dp == 0) return head::all_logits_tied(H_->n(), 1);
    return steps_->run_persistent(q, x, p.beta, blocks);
}

} // namespace winnow::cuda::adaptive
