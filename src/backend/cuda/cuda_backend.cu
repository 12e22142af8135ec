#include "backend/cuda/cuda_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <cublas_v2.h>
#include <map>
#include <vector>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/dequantize.h"
#include "backend/cuda/device.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/split_product.h"
#include "backend/cuda/split_product_logic.cuh"
#include "backend/cuda/stage.h"
#include "backend/cuda/step_program.h"

namespace winnow {

namespace {

#define WINNOW_CUBLAS_CHECK(call)                                                                                        \
    do {                                                                                                                 \
        cublasStatus_t st_ = (call);                                                                                     \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                                                \
            throw ::winnow::Error(::winnow::ErrorKind::io, std::string(#call) + " failed: " + cublasGetStatusString(st_)); \
    } while (0)

void check(const Tensor& t, const char* what, GgmlType type = GgmlType::F32) {
    if (t.device() != Device::cuda || t.type() != type)
        throw Error(ErrorKind::invalid_argument, std::string("cuda backend: ") + what + " must be a " + ggml_type_name(type) + " device tensor, got " + t.describe());
}

void check_shape(const Tensor& t, int64_t rows, int64_t cols, const char* what) {
    if (t.rows() != rows || t.cols() != cols)
        throw Error(ErrorKind::invalid_argument, std::string("cuda backend: ") + what + " is " + t.describe() + ", expected " + std::to_string(rows) +
                                                     "x" + std::to_string(cols));
}

// Products with this many tokens or more go through cuBLAS: BF16, F16, Q4_0 and Q4_1 matrices as bf16 tensor-core GEMMs
// over exact bf16 slices (split_product.h), F32 and Q8_0 as an fp32 sgemm on a decoded copy.
constexpr int kGemmMinTokens = 8;
// The split products' fp32 result, (weight slices x rows) x (3 x tokens), is bounded by taking the tokens in chunks of
// at most this many bytes of it; WINNOW_CUDA_SPLIT_PRODUCT_BYTES sets another bound (the GPU tests' small chunks).
constexpr int64_t kSplitProductBytes = int64_t{256} << 20;

int64_t split_product_bytes() {
    const char* env = std::getenv("WINNOW_CUDA_SPLIT_PRODUCT_BYTES");
    if (!env) return kSplitProductBytes;
    char* end = nullptr;
    const long long v = std::strtoll(env, &end, 10);
    if (end == env || *end != '\0' || v < 1)
        throw Error(ErrorKind::invalid_argument, std::string("WINNOW_CUDA_SPLIT_PRODUCT_BYTES must be a positive number of bytes, not '") + env + "'");
    return v;
}
// Attention for at most this many query rows over more than cuda::kSplitKeys keys is split over the keys (decode).
constexpr int kSplitMaxRows = 4;
// Dense attention for this many query rows or more takes the tiled prefill kernel (attention_tiles.cu): below it a
// tile of 16 rows would be mostly empty, and decode rows keep the kernel whose bits the split kernel's match.
constexpr int kTiledMinRows = 16;

// Whether the environment variable `name` is "0": the switches that turn a fused kernel off for measuring.
bool switched_off(const char* name) {
    const char* env = std::getenv(name);
    return env && std::string(env) == "0";
}
// Whether it is "1": the switches that turn a kernel on that is off by default until a GPU run has measured it.
bool switched_on(const char* name) {
    const char* env = std::getenv(name);
    return env && std::string(env) == "1";
}

class CudaBackend final : public Backend {
public:
    explicit CudaBackend(int device) : device_(device) {
        const int n = cuda::device_count();
        if (n == 0) throw Error(ErrorKind::unsupported, "no CUDA device is available (the cuda backend needs an NVIDIA GPU and its driver)");
        if (device < 0 || device >= n) throw Error(ErrorKind::invalid_argument, "CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(n) + " found)");
        WINNOW_CUDA_CHECK(cudaSetDevice(device));
        WINNOW_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        WINNOW_CUBLAS_CHECK(cublasCreate(&blas_));
        WINNOW_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
        WINNOW_CUBLAS_CHECK(cublasSetMathMode(blas_, CUBLAS_PEDANTIC_MATH)); // fp32 products stay fp32 (no TF32)
        // the split products' handle: bf16 inputs, fp32 compute, tensor cores allowed (the pedantic mode may forbid them)
        WINNOW_CUBLAS_CHECK(cublasCreate(&tensor_blas_));
        WINNOW_CUBLAS_CHECK(cublasSetStream(tensor_blas_, stream_));
        WINNOW_CUBLAS_CHECK(cublasSetMathMode(tensor_blas_, CUBLAS_DEFAULT_MATH));
        WINNOW_CUDA_CHECK(cudaMallocHost(&staging_, kStagingBytes));
        WINNOW_CUDA_CHECK(cudaEventCreateWithFlags(&staged_, cudaEventDisableTiming));
        name_ = "cuda:" + std::to_string(device) + " (" + cuda::device_name(device) + ")";
    }
    ~CudaBackend() override {
        abort_recording();
        for (cudaGraphExec_t g : graphs_)
            if (g) cudaGraphExecDestroy(g);
        cublasDestroy(blas_);
        cublasDestroy(tensor_blas_);
        cudaStreamSynchronize(stream_); // a staged copy may still read the staging buffer
        cudaEventDestroy(staged_);
        cudaFreeHost(staging_);
        cudaStreamDestroy(stream_);
    }

    const char* name() const override { return name_.c_str(); }
    Device device() const override { return Device::cuda; }

    bool supports(Op op, GgmlType type) const override {
        switch (op) {
        case Op::linear:
        case Op::linear_parts:
        case Op::linear_add:
        case Op::linear_swiglu:
        case Op::head_top_k:
        case Op::get_rows: return cuda::is_device_weight_type(type);
        case Op::copy_rows:
        case Op::rope_store_kv:
        case Op::summarize_keys:
        case Op::attention: return type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16;
        default: return type == GgmlType::F32;
        }
    }

    Tensor alloc(GgmlType type, int64_t rows, int64_t cols) override {
        not_while_recording("alloc");
        const size_t bytes = static_cast<size_t>(rows) * cols * tensor_type_size(type);
        void* p = nullptr;
        WINNOW_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(bytes, 1)));
        std::shared_ptr<void> storage(p, [](void* q) { cudaFree(q); });
        WINNOW_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream_));
        return Tensor(type, Device::cuda, rows, cols, std::move(storage), p);
    }
    Tensor place_readonly(GgmlType type, int64_t rows, int64_t cols, const void* host) override {
        Tensor t = alloc(type, rows, cols);
        WINNOW_CUDA_CHECK(cudaMemcpyAsync(t.raw(), host, t.bytes(), cudaMemcpyHostToDevice, stream_));
        WINNOW_CUDA_CHECK(cudaStreamSynchronize(stream_)); // the host buffer may be temporary
        return t;
    }
    void upload(const void* host, const Tensor& dst) override {
        not_while_recording("upload");
        check_device(dst);
        if (dst.bytes() <= kStagingBytes) {
            // Small uploads (a decode step's 24-byte inputs) go through pinned memory, so the copy is truly
            // asynchronous and upload() returns without waiting for the stream. The staging buffer is overwritten only
            // once the previous staged copy has read it (normally long done: a step ends with a download).
            WINNOW_CUDA_CHECK(cudaEventSynchronize(staged_));
            std::memcpy(staging_, host, dst.bytes());
            WINNOW_CUDA_CHECK(cudaMemcpyAsync(dst.raw(), staging_, dst.bytes(), cudaMemcpyHostToDevice, stream_));
            WINNOW_CUDA_CHECK(cudaEventRecord(staged_, stream_));
            return;
        }
        WINNOW_CUDA_CHECK(cudaMemcpyAsync(dst.raw(), host, dst.bytes(), cudaMemcpyHostToDevice, stream_));
        WINNOW_CUDA_CHECK(cudaStreamSynchronize(stream_)); // pageable source: return only once it has been read
    }
    void download(const Tensor& src, void* host) override {
        not_while_recording("download");
        check_device(src);
        WINNOW_CUDA_CHECK(cudaMemcpyAsync(host, src.raw(), src.bytes(), cudaMemcpyDeviceToHost, stream_));
        WINNOW_CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
    void synchronize() override {
        not_while_recording("synchronize");
        WINNOW_CUDA_CHECK(cudaStreamSynchronize(stream_));
    }

    void get_rows(const Matrix& table, const Tensor& ids, const Tensor& out) override {
        check(ids, "get_rows ids", GgmlType::I32);
        check(out, "get_rows output");
        check_shape(out, ids.rows(), table.cols, "get_rows output");
        cuda::launch_get_rows(table.type, table.data, table.row_bytes, table.rows, table.cols, ids.data<int32_t>(), static_cast<int>(ids.rows()),
                              out.f32(), stream());
    }

    void linear(const Matrix& w, const Tensor* bias, const Tensor& x, const Tensor& y) override {
        check(x, "linear input");
        check(y, "linear output");
        check_shape(x, x.rows(), w.cols, "linear input");
        check_shape(y, x.rows(), w.rows, "linear output");
        const int n = static_cast<int>(x.rows());
        const float* b = bias ? bias->f32() : nullptr;
        if (n < kGemmMinTokens) return run(cuda::gemv_stage(w.type, w.data, w.row_bytes, w.rows, w.cols, b, x.f32(), y.f32(), n, false));
        const int w_slices = split_products_ ? cuda::split_weight_slices(w.type) : 0;
        if (w_slices > 0) return split_product(w, w_slices, b, x, y);
        // prefill: decode the matrix to fp32 once, then one sgemm; y^T (rows x n) = W (rows x cols) x^T (cols x n)
        const float* wf = w.type == GgmlType::F32 ? reinterpret_cast<const float*>(w.data) : decoded(w);
        const float one = 1.0f, zero = 0.0f;
        (void)stream(); // (cuBLAS runs in the stream too)
        WINNOW_CUBLAS_CHECK(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(w.rows), n, static_cast<int>(w.cols), &one, wf,
                                        static_cast<int>(w.cols), x.f32(), static_cast<int>(w.cols), &zero, y.f32(), static_cast<int>(w.rows)));
        if (b) cuda::launch_add(y.f32(), b, n, 1, w.rows, stream());
    }

    // A decode step's q, k and v in one launch when they share a weight type; otherwise, and in prefill, one linear each.
    void linear_parts(const LinearPart* parts, int n_parts, const Tensor& x) override {
        if (!parts_in_one_launch(parts, n_parts, x)) return unfused_linear_parts(parts, n_parts, x);
        run(cuda::gemv_parts_stage(parts[0].w.type, to_linear_parts(parts, n_parts), parts[0].w.cols, x.f32(), static_cast<int>(x.rows()), nullptr, 0.0f));
    }

    // The norm staged in each GEMV block's shared memory: one launch for the norm and the three projections.
    void rms_norm_linear_parts(const Tensor& x, const InputRmsNorm& norm, const LinearPart* parts, int n_parts) override {
        const bool stageable = stages_norm(x, norm, "rms_norm_linear_parts");
        if (!parts_in_one_launch(parts, n_parts, x) || !stageable) return Backend::rms_norm_linear_parts(x, norm, parts, n_parts);
        run(cuda::gemv_parts_stage(parts[0].w.type, to_linear_parts(parts, n_parts), parts[0].w.cols, x.f32(), static_cast<int>(x.rows()),
                                   norm.weight->f32(), norm.eps));
    }

    // A decode step's residual add goes into the GEMV's epilogue (one launch per residual instead of two); prefill's
    // cuBLAS product goes into the base's scratch, then the add (cuBLAS's beta = 1 would round differently from the
    // add). Only prefill touches that scratch, so a recorded (decode) step never allocates or keeps its address.
    void linear_add(const Matrix& w, const Tensor* bias, const Tensor& x, const Tensor& y) override {
        check(x, "linear_add input");
        check(y, "linear_add output");
        check_shape(x, x.rows(), w.cols, "linear_add input");
        check_shape(y, x.rows(), w.rows, "linear_add output");
        const int n = static_cast<int>(x.rows());
        if (n < kGemmMinTokens) return run(cuda::gemv_stage(w.type, w.data, w.row_bytes, w.rows, w.cols, bias ? bias->f32() : nullptr, x.f32(), y.f32(), n, true));
        unfused_linear_add(w, bias, x, y);
    }

    // A decode step's gate and up rows in one warp each, and their product: one launch instead of three. Prefill runs
    // the three ops (up into y, gate into the base's scratch).
    void linear_swiglu(const Matrix& w_gate, const Matrix& w_up, const Tensor& x, const Tensor& y) override {
        const int n = checked_swiglu_rows(w_gate, w_up, x, y);
        if (n < kGemmMinTokens)
            return run(cuda::gemv_swiglu_stage(w_up.type, w_gate.data, w_up.data, w_up.row_bytes, w_up.rows, w_up.cols, x.f32(), y.f32(), n, nullptr, 0.0f));
        unfused_linear_swiglu(w_gate, w_up, x, y);
    }

    void rms_norm_linear_swiglu(const Tensor& x, const InputRmsNorm& norm, const Matrix& w_gate, const Matrix& w_up, const Tensor& y) override {
        const int n = checked_swiglu_rows(w_gate, w_up, x, y);
        const bool stageable = stages_norm(x, norm, "rms_norm_linear_swiglu");
        if (n >= kGemmMinTokens || !stageable) return Backend::rms_norm_linear_swiglu(x, norm, w_gate, w_up, y);
        run(cuda::gemv_swiglu_stage(w_up.type, w_gate.data, w_up.data, w_up.row_bytes, w_up.rows, w_up.cols, x.f32(), y.f32(), n, norm.weight->f32(),
                                    norm.eps));
    }

    void rms_norm(const Tensor& x, const Tensor& w, float eps, const Tensor& y) override {
        check(x, "rms_norm input");
        check(y, "rms_norm output");
        check_shape(y, x.rows(), x.cols(), "rms_norm output");
        cuda::launch_rms_norm(x.f32(), w.f32(), eps, y.f32(), x.rows(), x.cols(), stream());
    }

    void layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps, const Tensor& y) override {
        check(x, "layer_norm input");
        check(y, "layer_norm output");
        check_shape(y, x.rows(), x.cols(), "layer_norm output");
        cuda::launch_layer_norm(x.f32(), w.f32(), b.f32(), eps, y.f32(), x.rows(), x.cols(), stream());
    }

    void rope(const Tensor& x, const RopeParams& p) override {
        check(x, "rope input");
        check_shape(x, x.rows(), static_cast<int64_t>(p.n_heads) * p.head_dim, "rope input");
        cuda::launch_rope(x.f32(), x.rows(), p.n_heads, p.head_dim, p.rope_dim, p.pos0, p.base, p.style, stream(), position(p.pos),
                          freq_factors(p));
    }

    void copy_rows(const Tensor& src, const Tensor& dst, int64_t dst_row) override {
        check(src, "copy_rows source");
        check_device(dst);
        if (src.cols() != dst.cols() || dst_row < 0 || dst_row + src.rows() > dst.rows())
            throw Error(ErrorKind::invalid_argument, "copy_rows: " + src.describe() + " does not fit " + dst.describe() + " at row " + std::to_string(dst_row));
        if (!supports(Op::copy_rows, dst.type())) throw Error(ErrorKind::invalid_argument, "copy_rows: cannot write " + dst.describe());
        cuda::launch_copy_rows(src.f32(), dst.rows_view(dst_row, src.rows()).raw(), dst.type(), src.numel(), stream());
    }

    void copy_rows_at(const Tensor& src, const Tensor& dst, const Tensor& row) override {
        check(src, "copy_rows_at source");
        check_device(dst);
        if (src.cols() != dst.cols() || src.rows() > dst.rows() || !supports(Op::copy_rows, dst.type()))
            throw Error(ErrorKind::invalid_argument, "copy_rows_at: " + src.describe() + " cannot be written into " + dst.describe());
        cuda::launch_copy_rows_at(src.f32(), src.rows(), dst.raw(), dst.type(), dst.rows(), dst.cols(), position(&row), stream());
    }

    // A layer's rope(q), rope(k) and k, v cache writes in one launch (rope_store_kv.cu), the bits of the four ops. Caches of
    // two types (the decoder's never are) take the four ops.
    void rope_store_kv(const Tensor& q, const Tensor& k, const Tensor& v, const RopeParams& p, int n_head_kv, const Tensor& k_cache, const Tensor& v_cache,
                       int64_t dst_row, const Tensor* row_at) override {
        if (k_cache.type() != v_cache.type()) return Backend::rope_store_kv(q, k, v, p, n_head_kv, k_cache, v_cache, dst_row, row_at);
        cuda::launch_rope_store_kv(rope_store_kv_args(q, k, v, p, n_head_kv, k_cache, v_cache, dst_row, row_at), k_cache.type(), stream());
    }

    // A decode step's input norm, q/k/v projections, rotation and cache writes in one launch (qkv_rope_store.cu), the bits
    // of rms_norm_linear_parts + rope_store_kv. Prefill, weights of mixed types, caches of two types, inputs too wide to
    // stage, WINNOW_CUDA_FUSE_NORM=0 and WINNOW_CUDA_FUSE_QKV_ROPE=0 take those two ops.
    void rms_norm_qkv_rope_store_kv(const Tensor& x, const InputRmsNorm& norm, const LinearPart* qkv, const RopeParams& p, int n_head_kv,
                                    const Tensor& k_cache, const Tensor& v_cache, int64_t dst_row, const Tensor* row_at) override {
        const bool stageable = stages_norm(x, norm, "rms_norm_qkv_rope_store_kv");
        if (!fuse_qkv_rope_ || !stageable || !parts_in_one_launch(qkv, 3, x) || k_cache.type() != v_cache.type())
            return Backend::rms_norm_qkv_rope_store_kv(x, norm, qkv, p, n_head_kv, k_cache, v_cache, dst_row, row_at);
        // (the shapes rope_store_kv_args checks tie each part's rows to its heads: q n_head * head_dim, k and v n_head_kv * head_dim)
        const cuda::RopeStoreKvArgs a = rope_store_kv_args(qkv[0].y, qkv[1].y, qkv[2].y, p, n_head_kv, k_cache, v_cache, dst_row, row_at);
        run(cuda::qkv_rope_store_stage(qkv[0].w.type, to_linear_parts(qkv, 3), qkv[0].w.cols, x.f32(), norm.weight->f32(), norm.eps, a, k_cache.type()));
    }

    void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const AttentionParams& p) override {
        const int n = static_cast<int>(q.rows()), kv_dim = p.n_head_kv * p.head_dim;
        check(q, "attention queries");
        check(out, "attention output");
        check_device(k);
        check_device(v);
        if (k.type() != v.type() || !supports(Op::attention, k.type()) || (!p.pos && p.pos0 + n > k.rows()) || k.cols() != kv_dim || v.cols() != kv_dim ||
            q.cols() != static_cast<int64_t>(p.n_head) * p.head_dim)
            throw Error(ErrorKind::invalid_argument, "attention: shapes q " + q.describe() + " k " + k.describe() + " v " + v.describe() + " do not match the parameters");
        check_shape(out, n, q.cols(), "attention output");
        if (p.mask) p.mask->check_heads(p.n_head_kv);
        // with a device position, any row up to the key limit (or the cache's last) may be the last
        const int64_t last_key = attention_key_end(p, n, k.rows());
        if (p.mask && static_cast<int64_t>(p.mask->block) * p.mask->n_blocks < last_key)
            throw Error(ErrorKind::invalid_argument, "attention: the block mask covers fewer positions than " + std::to_string(last_key));
        check_block_selection(p, k.rows());
        if (p.mask) return sparse_attention(q, k, v, out, p, n, last_key);
        // Decode (a few rows) over more keys than one split: flash-decoding, so that a row spreads over many blocks.
        // With a device position the grid covers the keys up to the key limit (the same launch serves every replay
        // below it; splits past a replay's row return at once).
        auto splits_of = [](int64_t keys) { return static_cast<int>((keys + cuda::kSplitKeys - 1) / cuda::kSplitKeys); };
        // a sliding layer's row reads its window at most, and the splits count from its first key: no more are needed
        const int64_t row_keys = p.window > 0 ? std::min<int64_t>(last_key, p.window) : last_key;
        const bool split = n <= kSplitMaxRows && row_keys > cuda::kSplitKeys;
        // With a device position, buffers for the whole cache's splits, whichever kernel this launch takes: a step
        // recorded later at a higher key limit (a longer context) must not allocate while recording.
        if (split || (n <= kSplitMaxRows && p.pos)) reserve_split_buffers(n, p, splits_of(p.pos ? k.rows() : last_key));
        if (split) {
            const int n_splits = splits_of(row_keys);
            return run(cuda::attention_split_stage(q.f32(), k.raw(), v.raw(), k.type(), out.f32(), n, p.pos0, p.n_head, p.n_head_kv, p.head_dim,
                                                   p.effective_scale(), p.window, p.softcap, split_workspace_.f32(), split_arrivals_.data<int32_t>(), n_splits, position(p.pos),
                                                   static_cast<int>(last_key)));
        }
        // Prefill: key and value tiles shared by 16 rows (a host position only: recorded steps are decode rows).
        if (tiled_attention_ && !p.pos && n >= kTiledMinRows && p.head_dim <= cuda::kMaxTiledHeadDim)
            return cuda::launch_attention_tiles(q.f32(), k.raw(), v.raw(), k.type(), out.f32(), n, p.pos0, p.n_head, p.n_head_kv, p.head_dim,
                                                p.effective_scale(), p.window, p.softcap, stream());
        cuda::launch_attention(q.f32(), k.raw(), v.raw(), k.type(), out.f32(), n, p.pos0, p.n_head, p.n_head_kv, p.head_dim, p.effective_scale(),
                               p.window, p.softcap, stream(), position(p.pos), static_cast<int>(last_key));
    }

    // The flash-decoding workspace and arrival counters for n_splits splits of n rows, grown when too small.
    void reserve_split_buffers(int n, const AttentionParams& p, int n_splits) {
        const size_t need = cuda::attention_split_workspace_floats(n, p.n_head, p.head_dim, n_splits);
        if (static_cast<size_t>(split_workspace_.numel()) < need) {
            // a step recorded earlier (a graph) still reads and writes the old workspace: keep it alive
            if (split_workspace_.numel() > 0) retired_split_ws_.push_back(split_workspace_);
            split_workspace_ = alloc(GgmlType::F32, 1, static_cast<int64_t>(need));
        }
        if (split_arrivals_.numel() < static_cast<int64_t>(n) * p.n_head) { // alloc zeroes them; the kernel leaves them 0
            if (split_arrivals_.numel() > 0) retired_split_ws_.push_back(split_arrivals_);
            split_arrivals_ = alloc(GgmlType::I32, 1, static_cast<int64_t>(kSplitMaxRows) * p.n_head);
        }
    }

    // Block-sparse attention (a mask, optionally query-aware selection): the kept-unit kernels of sparse_attention.cu,
    // whose work follows the kept keys. Prefill rows go in chunks, so that the per-row unit lists and split records stay
    // a few MB whatever the prompt; the workspace is sized for the whole cache, so it is allocated once per shape.
    void sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const AttentionParams& p, int n, int64_t last_key) {
        const BlockMask& m = *p.mask;
        const bool select = p.select_blocks > 0;
        if (p.pos && n > kSparseChunkRows) throw Error(ErrorKind::invalid_argument, "attention: too many rows for a recorded sparse step");
        cuda::SparseRowsArgs a;
        a.pos_dev = position(p.pos);
        a.n_head = p.n_head, a.n_head_kv = p.n_head_kv, a.hd = p.head_dim, a.scale = p.effective_scale();
        a.unit = select ? p.key_summary.block : m.block;
        a.list_units = static_cast<int>((k.rows() + a.unit - 1) / a.unit);
        const DeviceMask& dm = device_mask(m);
        a.keep = dm.keep;
        if (!select) a.mask_row_start = dm.row_start.data<int32_t>(), a.mask_row_blocks = dm.row_blocks.data<int32_t>();
        // a row keeps at most its mask row's blocks (in units) and the selected units
        a.max_kept_units = std::min(a.list_units, dm.max_row_blocks * (m.block / a.unit) + p.select_blocks);
        a.mask_block = m.block, a.mask_n_blocks = m.n_blocks, a.mask_groups = m.groups;
        a.select = p.select_blocks; // >= 0 (check_block_selection)
        a.kmax = p.key_summary.kmax, a.kmin = p.key_summary.kmin, a.summarised_units = select ? p.key_summary.n_blocks : 0;
        const bool spion = m.denominator == SparseDenominator::spion;
        const int64_t q_stride = q.cols(), o_stride = out.cols();
        for (int row0 = 0; row0 < n; row0 += kSparseChunkRows) {
            a.pos0 = p.pos0, a.row0 = row0, a.rows = std::min(kSparseChunkRows, n - row0);
            a.max_keys = p.pos ? static_cast<int>(last_key) : p.pos0 + row0 + a.rows; // with pos_dev, any row up to the key limit may be the last
            cuda::check_sparse_attention(a);
            cuda::SparseRowsArgs sizing = a; // the workspace of a full chunk, whatever this one's rows
            sizing.rows = p.pos ? a.rows : kSparseChunkRows;
            const int64_t need = static_cast<int64_t>((cuda::sparse_attention_workspace(sizing).bytes + sizeof(float) - 1) / sizeof(float));
            if (sparse_workspace_.numel() < need) {
                if (sparse_workspace_.numel() > 0) retired_split_ws_.push_back(sparse_workspace_); // a recorded graph may still use it
                sparse_workspace_ = alloc(GgmlType::F32, 1, need);
            }
            if (sparse_arrivals_.numel() < static_cast<int64_t>(kSparseChunkRows) * p.n_head) { // alloc zeroes them; the kernel leaves them 0
                if (sparse_arrivals_.numel() > 0) retired_split_ws_.push_back(sparse_arrivals_);
                sparse_arrivals_ = alloc(GgmlType::I32, 1, static_cast<int64_t>(kSparseChunkRows) * p.n_head);
            }
            cuda::launch_sparse_attention(q.f32() + row0 * q_stride, k.raw(), v.raw(), k.type(), out.f32() + row0 * o_stride, a, spion,
                                          sparse_workspace_.raw(), sparse_arrivals_.data<int32_t>(), stream());
        }
    }

    void summarize_keys(const Tensor& k, const Tensor& kmax, const Tensor& kmin, int n_head_kv, int unit, int64_t row0, int n_rows,
                        const Tensor* row_at) override {
        check_summarize_keys_args(k, kmax, kmin, n_head_kv, unit, row_at ? 0 : row0, n_rows, Device::cuda); // with row_at, row0 is read on the device
        require_support(*this, Op::summarize_keys, k.type());
        cuda::launch_summarize_keys(k.type(), k.raw(), static_cast<int>(k.cols()), n_head_kv, unit, static_cast<int>(row0), n_rows, position(row_at),
                                    static_cast<int>(k.rows()), kmax.data<uint16_t>(), kmin.data<uint16_t>(), stream());
    }

    void gelu_tanh(const Tensor& x) override {
        check(x, "gelu input");
        cuda::launch_gelu_tanh(x.f32(), x.numel(), stream());
    }

    void swiglu(const Tensor& gate, const Tensor& up, const Tensor& out) override {
        check(gate, "swiglu gate");
        check(up, "swiglu up");
        check(out, "swiglu output");
        check_shape(up, gate.rows(), gate.cols(), "swiglu up");
        check_shape(out, gate.rows(), gate.cols(), "swiglu output");
        cuda::launch_swiglu(gate.f32(), up.f32(), out.f32(), gate.numel(), stream());
    }

    void geglu(const Tensor& gate, const Tensor& up, const Tensor& out) override {
        check(gate, "geglu gate");
        check(up, "geglu up");
        check(out, "geglu output");
        check_shape(up, gate.rows(), gate.cols(), "geglu up");
        check_shape(out, gate.rows(), gate.cols(), "geglu output");
        cuda::launch_geglu(gate.f32(), up.f32(), out.f32(), gate.numel(), stream());
    }

    void scale(const Tensor& x, float s) override {
        check(x, "scale input");
        cuda::launch_scale(x.f32(), s, x.numel(), stream());
    }

    void softcap(const Tensor& x, float cap) override {
        check(x, "softcap input");
        check_softcap(cap);
        cuda::launch_softcap(x.f32(), cap, x.numel(), stream());
    }

    void add(const Tensor& y, const Tensor& x) override {
        check(y, "add destination");
        check(x, "add source");
        if (x.cols() != y.cols() || (x.rows() != y.rows() && x.rows() != 1))
            throw Error(ErrorKind::invalid_argument, "add: " + x.describe() + " cannot be added to " + y.describe());
        cuda::launch_add(y.f32(), x.f32(), y.rows(), x.rows(), y.cols(), stream());
    }

    TopK top_k(const Tensor& logits, int k, bool want_log_norm) override {
        not_while_recording("top_k (it returns to the host)");
        check(logits, "top_k input");
        const int64_t n = logits.numel();
        if (logits.rows() != 1 || k < 1 || k > n) throw Error(ErrorKind::invalid_argument, "top_k: need one row and 1 <= k <= " + std::to_string(n));
        // one small device buffer: k ids, k values, the log-normalizer
        const size_t bytes = static_cast<size_t>(k) * 8 + 8;
        if (static_cast<size_t>(topk_buf_.numel()) < bytes) topk_buf_ = alloc(GgmlType::I8, 1, static_cast<int64_t>(bytes));
        auto* base = topk_buf_.data<uint8_t>();
        auto* d_norm = reinterpret_cast<double*>(base);
        auto* d_ids = reinterpret_cast<int32_t*>(base + 8);
        auto* d_vals = reinterpret_cast<float*>(base + 8 + 4 * static_cast<size_t>(k));
        cuda::launch_top_k(logits.f32(), n, k, d_ids, d_vals, want_log_norm ? d_norm : nullptr, stream());
        return read_top_k(k, want_log_norm);
    }

    // The fused head (head_top_k.cu): the logits stay in the kernel's shared memory; k ids, k logits and the
    // log-normalizer come back in one copy, as from top_k.
    TopK head_top_k(const Matrix& w, const Tensor& hidden, int k, bool want_log_norm) override {
        not_while_recording("head_top_k (it returns to the host)");
        check_head_top_k_args(w, hidden, k, Device::cuda);
        require_support(*this, Op::head_top_k, w.type);
        const size_t ws_bytes = cuda::head_top_k_workspace_bytes(w.rows, k);
        if (static_cast<size_t>(head_ws_.numel()) < ws_bytes) head_ws_ = alloc(GgmlType::I8, 1, static_cast<int64_t>(ws_bytes)); // cudaMalloc: 256-byte aligned
        const size_t bytes = static_cast<size_t>(k) * 8 + 8;
        if (static_cast<size_t>(topk_buf_.numel()) < bytes) topk_buf_ = alloc(GgmlType::I8, 1, static_cast<int64_t>(bytes));
        auto* base = topk_buf_.data<uint8_t>();
        cuda::launch_head_top_k(w.type, w.data, w.row_bytes, w.rows, w.cols, hidden.f32(), k, head_ws_.raw(), reinterpret_cast<int32_t*>(base + 8),
                                reinterpret_cast<float*>(base + 8 + 4 * static_cast<size_t>(k)), want_log_norm ? reinterpret_cast<double*>(base) : nullptr,
                                stream());
        return read_top_k(k, want_log_norm);
    }

    void* stream_handle() const { return stream_; }

    // The sampler chain in one kernel (sample.cu); 4 bytes for the caller to download. Recordable once its scratch
    // exists: u and the history length may come from device memory.
    void sample(const Tensor& logits, const SampleParams& p, const Tensor& token) override {
        const int64_t n = check_sample_args(logits, p, token, Device::cuda);
        const size_t bytes = cuda::sample_workspace_bytes(n);
        if (static_cast<size_t>(sample_ws_.numel()) < bytes) {
            not_while_recording("the sample op's first call (it allocates its scratch)");
            // a step recorded earlier may still point at the old scratch: keep it alive rather than free it under a graph
            if (sample_ws_.numel() > 0) retired_sample_ws_.push_back(sample_ws_);
            sample_ws_ = alloc(GgmlType::I8, 1, static_cast<int64_t>(bytes)); // the kernel clears what it reads (sample_chain.cuh)
        }
        cuda::SampleChain c;
        c.llama_order = p.chain.order == SamplerOrder::llama_cpp;
        c.temperature = p.chain.temperature;
        c.top_k = p.chain.top_k;
        c.top_p = p.chain.top_p;
        c.min_p = p.chain.min_p;
        c.log_min_p = p.chain.min_p > 0.0f ? std::log(p.chain.min_p) : 0.0f; // the host's float log, not the device's
        c.repeat_penalty = p.chain.repeat_penalty;
        c.repeat_last_n = p.chain.repeat_last_n;
        const int32_t* history = p.history ? p.history->data<int32_t>() : nullptr;
        const int capacity = p.history ? static_cast<int>(p.history->rows()) : 0;
        const double* u = p.chain.temperature > 0.0f ? static_cast<const double*>(p.u->raw()) : nullptr;
        cuda::launch_sample(logits.f32(), static_cast<int>(n), c, history, capacity, p.n_history, position(p.n_history_at), u, p.append,
                            token.data<int32_t>(), sample_ws_.raw(), sample_slices_, stream());
    }

    // ---- recording: stream capture into a CUDA graph, instantiated once and replayed with one launch
    bool can_record() const override { return true; }
    void begin_recording() override {
        if (recording_) throw Error(ErrorKind::invalid_argument, "cuda backend: a recording is already open");
        // the step program's buffer now: capture allows no allocation (step_program.h); taken on only once the capture
        // has begun, so that a refused capture leaves no recorder behind for the op-by-op steps that follow
        Tensor program = megakernel_ ? alloc(GgmlType::I8, 1, static_cast<int64_t>(cuda::kStepProgramCapacity * sizeof(cuda::Stage))) : Tensor();
        // relaxed: other threads' CUDA calls (other sessions) are not affected by this thread's capture
        WINNOW_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed));
        recording_ = true;
        if (megakernel_) {
            program_ = std::move(program);
            step_ = std::make_unique<cuda::StepRecorder>(reinterpret_cast<cuda::Stage*>(program_.raw()));
        }
    }
    int end_recording() override {
        if (!recording_) throw Error(ErrorKind::invalid_argument, "cuda backend: no recording is open");
        if (step_) step_->flush(stream_);
        recording_ = false;
        const std::unique_ptr<cuda::StepRecorder> step = std::move(step_);
        cudaGraph_t graph = nullptr;
        WINNOW_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
        cudaGraphExec_t exec = nullptr;
        const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
        cudaGraphDestroy(graph);
        WINNOW_CUDA_CHECK(e);
        if (step) step->upload(stream_); // in the stream's order: after the buffer's zeroing, before the first replay
        graphs_.push_back(exec);
        programs_.push_back(step ? std::move(program_) : Tensor());
        program_ = Tensor();
        return static_cast<int>(graphs_.size()) - 1;
    }
    void abort_recording() override {
        if (!recording_) return;
        recording_ = false;
        step_.reset(); // its pending stages belong to the abandoned capture
        cudaGraph_t graph = nullptr;
        if (cudaStreamEndCapture(stream_, &graph) == cudaSuccess && graph) cudaGraphDestroy(graph);
        program_ = Tensor(); // freed once the capture is over (a cudaFree during capture may be refused)
        cudaGetLastError(); // an invalidated capture leaves its error behind; the eager path that follows must not see it
    }
    void replay(int recording) override {
        if (recording < 0 || recording >= static_cast<int>(graphs_.size()) || !graphs_[recording])
            throw Error(ErrorKind::invalid_argument, "cuda backend: no recording " + std::to_string(recording));
        WINNOW_CUDA_CHECK(cudaGraphLaunch(graphs_[recording], stream_));
    }
    void drop_recording(int recording) override {
        if (recording < 0 || recording >= static_cast<int>(graphs_.size()) || !graphs_[recording]) return;
        cudaGraphExecDestroy(graphs_[recording]);
        graphs_[recording] = nullptr;
        programs_[recording] = Tensor();
    }

private:
    // The stream, for an op's launches and copies, after the step program's current run (whose stages came before
    // this op) has been launched into it. Every op issues its work through this, so no op can overtake a pending run.
    cudaStream_t stream() {
        if (step_) step_->flush(stream_);
        return stream_;
    }
    // The matrix decoded to fp32 in the prefill scratch (the same values as the CPU's dequantize_row).
    const float* decoded(const Matrix& w) {
        const size_t need = static_cast<size_t>(w.rows) * w.cols;
        float* out = at_least(decoded_, GgmlType::F32, need).f32();
        cuda::dequantize(w.type, w.data, out, need, stream());
        return out;
    }

    // A scratch of at least `elements` values of `type`, grown (never shrunk) as prefill needs.
    Tensor& at_least(Tensor& t, GgmlType type, size_t elements) {
        if (t.numel() < static_cast<int64_t>(elements)) t = alloc(type, 1, static_cast<int64_t>(elements));
        return t;
    }

    // Prefill's y = W x (+ b) on bf16 tensor cores at fp32 accuracy (split_product.h): W as w_slices exact bf16
    // slices (BF16 read in place; F16, Q4_0 and Q4_1 decoded and split in two, Q4_1 with a block-sum column per 32),
    // each chunk of tokens' activations as three (with the matching block sums), one GEMM per chunk over every pair of
    // slices, and the partial products summed back, smallest first, with the bias.
    void split_product(const Matrix& w, int w_slices, const float* bias, const Tensor& x, const Tensor& y) {
        const int64_t rows = w.rows, cols = w.cols, n = x.rows();
        constexpr int xs = 3; // activation slices
        const bool block_sums = cuda::split_block_sums(w.type);
        const int64_t k = cuda::split_product::augmented_cols(cols, block_sums); // the GEMM's inner dimension
        const uint16_t* a = reinterpret_cast<const uint16_t*>(w.data); // BF16: the stored rows are the slice
        int64_t lda = static_cast<int64_t>(w.row_bytes / 2);
        if (w_slices > 1) {
            const size_t count = static_cast<size_t>(rows) * k;
            uint16_t* slices = at_least(split_weights_, GgmlType::BF16, count * w_slices).data<uint16_t>();
            cuda::launch_split_weights(w.type, w.data, w.row_bytes, rows, cols, w_slices, slices, stream());
            a = slices;
            lda = k;
        }
        const int64_t per_token = w_slices * rows * xs * static_cast<int64_t>(sizeof(float));
        const int64_t chunk = std::clamp<int64_t>(split_product_bytes_ / per_token, 1, n);
        uint16_t* xb = at_least(split_activations_, GgmlType::BF16, static_cast<size_t>(chunk * k * xs)).data<uint16_t>();
        float* products = at_least(split_products_scratch_, GgmlType::F32, static_cast<size_t>(chunk * per_token / sizeof(float))).f32();
        const float one = 1.0f, zero = 0.0f;
        for (int64_t t0 = 0; t0 < n; t0 += chunk) {
            const int64_t c = std::min(chunk, n - t0);
            cuda::launch_split_activations(x.f32() + t0 * cols, c, cols, block_sums, xb, stream());
            // (w_slices * rows) x (3c) = [W_0; W_1]^T-stacked rows (rows x k each, row-major) x the slices' columns
            WINNOW_CUBLAS_CHECK(cublasGemmEx(tensor_blas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(w_slices * rows), static_cast<int>(xs * c),
                                             static_cast<int>(k), &one, a, CUDA_R_16BF, static_cast<int>(lda), xb, CUDA_R_16BF, static_cast<int>(k),
                                             &zero, products, CUDA_R_32F, static_cast<int>(w_slices * rows), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            cuda::launch_combine_split_products(
                {products, w.type, w.data, w.row_bytes, x.f32() + t0 * cols, rows, cols, c, w_slices, bias, y.f32() + t0 * rows}, stream());
        }
    }

    // A decode-step kernel: a stage of the step program while one is recorded, else its own launch.
    void run(const cuda::Stage& s) {
        if (s.blocks() == 0) return;
        if (step_ && step_->add(s, stream_)) return;
        cuda::launch_stage(s, stream());
    }

    // Whether linear_parts' parts run as one GEMV launch (a decode batch, at most kMaxLinearParts parts of one weight
    // type); checks the arguments.
    bool parts_in_one_launch(const LinearPart* parts, int n_parts, const Tensor& x) const {
        check(x, "linear_parts input");
        bool one_launch = x.rows() < kGemmMinTokens && n_parts > 0 && n_parts <= cuda::kMaxLinearParts;
        for (int i = 0; i < n_parts; ++i) {
            check(parts[i].y, "linear_parts output");
            check_shape(x, x.rows(), parts[i].w.cols, "linear_parts input");
            check_shape(parts[i].y, x.rows(), parts[i].w.rows, "linear_parts output");
            one_launch = one_launch && parts[i].w.type == parts[0].w.type;
        }
        return one_launch;
    }
    // rope_store_kv's argument checks (shapes, rope_dim, caches of one type that hold the rows) and its kernel's arguments.
    cuda::RopeStoreKvArgs rope_store_kv_args(const Tensor& q, const Tensor& k, const Tensor& v, const RopeParams& p, int n_head_kv, const Tensor& k_cache,
                                             const Tensor& v_cache, int64_t dst_row, const Tensor* row_at) const {
        check(q, "rope_store_kv queries");
        check(k, "rope_store_kv keys");
        check(v, "rope_store_kv values");
        const int64_t n = q.rows(), kv_dim = static_cast<int64_t>(n_head_kv) * p.head_dim;
        check_shape(q, n, static_cast<int64_t>(p.n_heads) * p.head_dim, "rope_store_kv queries");
        check_shape(k, n, kv_dim, "rope_store_kv keys");
        check_shape(v, n, kv_dim, "rope_store_kv values");
        const bool rotate = p.style != RopeStyle::none;
        if (rotate && (p.rope_dim < 0 || p.rope_dim > p.head_dim))
            throw Error(ErrorKind::invalid_argument,
                        "rope_store_kv: rope_dim " + std::to_string(p.rope_dim) + " outside a head of " + std::to_string(p.head_dim));
        check_device(k_cache);
        check_device(v_cache);
        for (const Tensor* c : {&k_cache, &v_cache})
            if (c->cols() != kv_dim || !supports(Op::rope_store_kv, c->type()) || (row_at ? n > c->rows() : dst_row < 0 || dst_row + n > c->rows()))
                throw Error(ErrorKind::invalid_argument, "rope_store_kv: " + std::to_string(n) + " rows of " + std::to_string(kv_dim) + " do not fit " +
                                                             c->describe() + (row_at ? std::string() : " at row " + std::to_string(dst_row)));
        cuda::RopeStoreKvArgs a;
        a.q = q.f32(), a.k = k.f32(), a.v = v.f32();
        a.k_cache = k_cache.raw(), a.v_cache = v_cache.raw();
        a.rows = n, a.k_cache_rows = k_cache.rows(), a.v_cache_rows = v_cache.rows();
        a.n_head = p.n_heads, a.n_head_kv = n_head_kv, a.head_dim = p.head_dim;
        a.rope_dim = rotate ? p.rope_dim : 0; // launch_rope rotates nothing without a style
        a.adjacent = p.style == RopeStyle::adjacent_pairs;
        a.base = p.base;
        a.freq_factors = rotate ? freq_factors(p) : nullptr;
        a.pos0 = p.pos0, a.pos_dev = position(p.pos);
        a.dst_row = dst_row, a.row_dev = position(row_at);
        return a;
    }
    // RopeParams::freq_factors on this device, checked: one F32 factor per rotated pair
    const float* freq_factors(const RopeParams& p) const {
        if (p.freq_factors) check(*p.freq_factors, "rope frequency factors");
        return checked_rope_factors(p);
    }
    static cuda::LinearParts to_linear_parts(const LinearPart* parts, int n_parts) {
        cuda::LinearParts lp;
        for (int i = 0; i < n_parts; ++i) {
            const LinearPart& p = parts[i];
            lp.w[i] = p.w.data, lp.row_bytes[i] = p.w.row_bytes, lp.rows[i] = p.w.rows;
            lp.bias[i] = p.bias ? p.bias->f32() : nullptr, lp.y[i] = p.y.f32();
        }
        lp.count = n_parts;
        return lp;
    }
    // linear_swiglu's argument checks; the rows of x.
    static int checked_swiglu_rows(const Matrix& w_gate, const Matrix& w_up, const Tensor& x, const Tensor& y) {
        check_linear_swiglu_args(w_gate, w_up);
        check(x, "linear_swiglu input");
        check(y, "linear_swiglu output");
        check_shape(x, x.rows(), w_up.cols, "linear_swiglu input");
        check_shape(y, x.rows(), w_up.rows, "linear_swiglu output");
        return static_cast<int>(x.rows());
    }
    // Whether an input norm is staged in the GEMV blocks' shared memory (it fits, and WINNOW_CUDA_FUSE_NORM is not 0);
    // checks the norm's weight and scratch on every path, the fused one and the default alike.
    bool stages_norm(const Tensor& x, const InputRmsNorm& norm, const char* op) const {
        check_input_norm(norm, op);
        check(*norm.weight, "input norm weight");
        if (norm.weight->numel() != x.cols())
            throw Error(ErrorKind::invalid_argument, "cuda backend: the input norm's weight is " + norm.weight->describe() + " for rows of " + std::to_string(x.cols()));
        return fuse_norm_ && x.cols() <= cuda::kMaxStagedCols;
    }
    // Allocation, copies and waits cannot be part of a CUDA graph captured from the stream: refuse them clearly.
    void not_while_recording(const char* what) const {
        if (recording_) throw Error(ErrorKind::invalid_argument, std::string("cuda backend: ") + what + " is not allowed while recording ops");
    }
    // A position tensor's device pointer (null: the op's host position applies).
    const int32_t* position(const Tensor* pos) const {
        if (!pos) return nullptr;
        if (pos->device() != Device::cuda || pos->type() != GgmlType::I32 || pos->numel() != 1)
            throw Error(ErrorKind::invalid_argument, "cuda backend: a position must be one I32 in device memory, got " + pos->describe());
        return pos->data<int32_t>();
    }
    // The k ids, k values and log-normalizer top_k and head_top_k leave in topk_buf_ (log_norm at 0, ids at 8, values
    // after them), copied to the host in one transfer.
    TopK read_top_k(int k, bool want_log_norm) {
        const size_t bytes = static_cast<size_t>(k) * 8 + 8;
        std::vector<uint8_t> host(bytes);
        WINNOW_CUDA_CHECK(cudaMemcpyAsync(host.data(), topk_buf_.raw(), bytes, cudaMemcpyDeviceToHost, stream_));
        WINNOW_CUDA_CHECK(cudaStreamSynchronize(stream_));
        TopK r;
        r.ids.resize(k);
        r.logits.resize(k);
        std::memcpy(r.ids.data(), host.data() + 8, 4 * static_cast<size_t>(k));
        std::memcpy(r.logits.data(), host.data() + 8 + 4 * static_cast<size_t>(k), 4 * static_cast<size_t>(k));
        if (want_log_norm) std::memcpy(&r.log_norm, host.data(), 8);
        return r;
    }
    void check_device(const Tensor& t) const {
        if (t.device() != Device::cuda) throw Error(ErrorKind::invalid_argument, "cuda backend: " + t.describe() + " is not in device memory");
    }
    // A block mask on the device, with the most blocks any of its rows keeps, and its rows as lists of their causal kept
    // blocks (cuda::SparseRowsArgs::mask_row_start). Uploaded on first use and keyed by the mask's address, so every use
    // also compares the mask with the host copy taken at the upload (a memcmp of its flags: microseconds, and only when
    // an op is issued, not when a recording replays): a mask destroyed and another built at the same address (a new
    // Forward's pattern, the next context length's masks) must get its own blocks, not the old mask's.
    struct DeviceMask {
        Tensor tensor, row_start, row_blocks;
        const uint8_t* keep = nullptr;
        int max_row_blocks = 0;
        int block = 0, n_blocks = 0, groups = 0;
        std::vector<uint8_t> host_keep; // the flags uploaded
        bool same_as(const BlockMask& m) const { return block == m.block && n_blocks == m.n_blocks && groups == m.groups && host_keep == m.keep; }
    };
    const DeviceMask& device_mask(const BlockMask& m) {
        auto it = masks_.find(&m);
        if (it == masks_.end() || !it->second.same_as(m)) {
            not_while_recording("a block mask's upload");
            m.validate();
            DeviceMask d;
            d.tensor = place_readonly(GgmlType::I8, 1, static_cast<int64_t>(m.keep.size()), m.keep.data());
            d.keep = d.tensor.data<uint8_t>();
            for (size_t r = 0; r < m.keep.size(); r += static_cast<size_t>(m.n_blocks))
                d.max_row_blocks = std::max(d.max_row_blocks, static_cast<int>(std::count_if(m.keep.begin() + static_cast<ptrdiff_t>(r),
                                                                                                m.keep.begin() + static_cast<ptrdiff_t>(r) + m.n_blocks,
                                                                                                [](uint8_t f) { return f != 0; })));
            std::vector<int32_t> start{0}, blocks;
            for (int g = 0; g < m.groups; ++g)
                for (int qb = 0; qb < m.n_blocks; ++qb) {
                    const uint8_t* row = m.row(qb, g);
                    for (int kb = 0; kb <= qb; ++kb)
                        if (row[kb]) blocks.push_back(kb);
                    start.push_back(static_cast<int32_t>(blocks.size()));
                }
            d.row_start = place_readonly(GgmlType::I32, 1, static_cast<int64_t>(start.size()), start.data());
            d.row_blocks = place_readonly(GgmlType::I32, 1, std::max<int64_t>(1, static_cast<int64_t>(blocks.size())), blocks.empty() ? start.data() : blocks.data());
            d.block = m.block, d.n_blocks = m.n_blocks, d.groups = m.groups, d.host_keep = m.keep;
            if (it != masks_.end()) retired_masks_.push_back(std::move(it->second)); // a recorded graph may still read it
            it = masks_.insert_or_assign(&m, std::move(d)).first;
        }
        return it->second;
    }

    int device_;
    std::string name_;
    // WINNOW_CUDA_FUSE_NORM=0 in the environment runs the input norms as ops of their own (the same bits, one launch
    // more per fused op): for measuring what staging the norm in the GEMV blocks saves or costs
    bool fuse_norm_ = !switched_off("WINNOW_CUDA_FUSE_NORM");
    // WINNOW_CUDA_FUSE_QKV_ROPE=0: a decode step's projections and its rope + cache writes as two launches (the same bits)
    bool fuse_qkv_rope_ = !switched_off("WINNOW_CUDA_FUSE_QKV_ROPE");
    // WINNOW_CUDA_SAMPLE_SLICES=0: the sample op as its first version, one block over the whole vocabulary with the
    // filters' cuts by bisection only (the same tokens): for measuring what the slices save
    bool sample_slices_ = !switched_off("WINNOW_CUDA_SAMPLE_SLICES");
    // WINNOW_CUDA_SPLIT_PRODUCTS=0: every prefill product on the fp32 sgemm, as before the bf16 split products
    bool split_products_ = !switched_off("WINNOW_CUDA_SPLIT_PRODUCTS");
    int64_t split_product_bytes_ = split_product_bytes();
    // WINNOW_CUDA_TILED_ATTENTION=0: prefill's attention on attention.cu's block per row and head, as before the tiles
    bool tiled_attention_ = !switched_off("WINNOW_CUDA_TILED_ATTENTION");
    cudaStream_t stream_ = nullptr;
    cublasHandle_t blas_ = nullptr;
    cublasHandle_t tensor_blas_ = nullptr; // bf16 tensor-core products (the split products)
    Tensor decoded_;  // prefill: the current matrix decoded to fp32
    Tensor split_weights_, split_activations_, split_products_scratch_; // prefill's split products (split_product)
    Tensor topk_buf_; // top_k and head_top_k results
    Tensor head_ws_;  // head_top_k's tile candidates and log-sum-exp parts
    Tensor sample_ws_; // the sample kernel's scratch (cuda::sample_workspace_bytes)
    std::vector<Tensor> retired_sample_ws_; // smaller scratches a recorded graph may still read (grows only with the vocabulary)
    std::vector<Tensor> retired_split_ws_;  // flash-decoding workspaces outgrown while a recorded graph may still use them
    Tensor split_workspace_; // flash-decoding partial results (allocated by an op-by-op step, reused by recordings)
    Tensor split_arrivals_;  // flash-decoding: per (row, head), the splits done so far (0 between launches)
    Tensor sparse_arrivals_; // block-sparse attention: the same, for up to kSparseChunkRows rows
    Tensor sparse_workspace_; // block-sparse attention's unit lists and split records
    static constexpr size_t kStagingBytes = 4096; // uploads up to this size are staged in pinned memory
    void* staging_ = nullptr;
    cudaEvent_t staged_ = nullptr; // recorded after the last staged copy
    static constexpr int kSparseChunkRows = 256; // prefill rows per block-sparse launch
    std::map<const BlockMask*, DeviceMask> masks_;
    std::vector<DeviceMask> retired_masks_; // masks replaced at their address while a recorded graph may still read them
    bool recording_ = false;
    std::vector<cudaGraphExec_t> graphs_; // recordings; a dropped one is null
    // WINNOW_CUDA_MEGAKERNEL=1: a recorded step's GEMV, qkv and attention-split kernels run as one cooperative kernel
    // (step_program.h); off by default until a GPU run has measured it
    bool megakernel_ = switched_on("WINNOW_CUDA_MEGAKERNEL");
    std::unique_ptr<cuda::StepRecorder> step_; // the open recording's step program (megakernel_ only)
    Tensor program_;                            // its stages' device memory
    std::vector<Tensor> programs_;              // each recording's stages (empty without a program), as graphs_
};

} // namespace

std::unique_ptr<Backend> make_cuda_backend(int device) { return std::make_unique<CudaBackend>(device); }

void* cuda_backend_stream(Backend& be) {
    auto* cb = dynamic_cast<CudaBackend*>(&be);
    if (!cb) throw Error(ErrorKind::invalid_argument, std::string("the ") + be.name() + " backend is not the CUDA backend");
    return cb->stream_handle();
}

} // namespace winnow
