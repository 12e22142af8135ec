// The CPU backend: fp32 kernels on host memory, SIMD dot products on the stored weight types, OpenMP across the
// cores. Per-row ops run the shared reference loops (backend/cpu/reference_ops.h); linear and attention have their
// own SIMD kernels, checked against those references by tests/ops.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <omp.h>
#include <sys/mman.h>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/attention_cpu.h"
#include "backend/cpu/gemm.h"
#include "backend/cpu/kv_elem.h"
#include "backend/cpu/reference_ops.h"
#include "backend/cpu/sample_cpu.h"
#include "backend/cpu/vec_dot.h"
#include "backend/cpu/vec_dot_q8.h"
#include "io/quant.h"
#include "sparse/key_summary.h"
#include "winnow/error.h"

namespace winnow {

namespace {

void check_f32(const Tensor& t, const char* what) {
    if (t.type() != GgmlType::F32 || t.device() != Device::cpu)
        throw Error(ErrorKind::invalid_argument, std::string("cpu backend: ") + what + " must be an F32 host tensor, got " + t.describe());
}

// A KV cache (copy_rows destination, attention K/V): F32, F16 or BF16 in host memory.
void check_kv(const Tensor& t, const char* what) {
    if (!cpu::is_kv_type(t.type()) || t.device() != Device::cpu)
        throw Error(ErrorKind::invalid_argument, std::string("cpu backend: ") + what + " must be an F32, F16 or BF16 host tensor, got " +
                                                     t.describe());
}

void check_shape(const Tensor& t, int64_t rows, int64_t cols, const char* what) {
    if (t.rows() != rows || t.cols() != cols)
        throw Error(ErrorKind::invalid_argument, std::string("cpu backend: ") + what + " is " + t.describe() + ", expected " +
                                                     std::to_string(rows) + "x" + std::to_string(cols));
}

class CpuBackend final : public Backend {
public:
    CpuBackend(int n_threads, CpuDotMode mode) : n_threads_(n_threads > 0 ? n_threads : omp_get_num_procs()), mode_(mode) {}
    const char* name() const override { return mode_ == CpuDotMode::q8 ? "cpu-q8" : mode_ == CpuDotMode::automatic ? "cpu-auto" : "cpu"; }
    Device device() const override { return Device::cpu; }

    bool supports(Op op, GgmlType type) const override {
        switch (op) {
        case Op::linear:
        case Op::linear_parts:
        case Op::linear_add:
        case Op::linear_swiglu:
        case Op::head_top_k:
        case Op::get_rows: return ggml_type_supported(type);
        case Op::copy_rows:
        case Op::rope_store_kv: // Backend's default: rope, then copy_rows
        case Op::summarize_keys:
        case Op::attention: return cpu::is_kv_type(type); // the KV cache: F32, F16 or BF16 (cpu/kv_elem.h)
        default: return type == GgmlType::F32;
        }
    }

    static constexpr size_t kHugePage = size_t{2} << 20;
    Tensor alloc(GgmlType type, int64_t rows, int64_t cols) override {
        const size_t bytes = static_cast<size_t>(rows) * cols * tensor_type_size(type);
        // 64-byte aligned, zeroed: SIMD loads of whole rows and a defined initial cache. Large tensors (the KV cache)
        // are 2 MiB aligned and asked to be backed by transparent huge pages: attention reads the cache's rows
        // scattered (sparse units, strided heads), and with 4 KiB pages nearly every unit costs a page walk.
        const bool large = bytes >= kHugePage;
        const size_t align = large ? kHugePage : 64, padded = (std::max<size_t>(bytes, 1) + align - 1) / align * align;
        void* p = std::aligned_alloc(align, padded);
        if (!p) throw Error(ErrorKind::io, "cpu backend: out of memory allocating " + std::to_string(bytes) + " bytes");
        if (large) madvise(p, padded, MADV_HUGEPAGE); // advice only: where THP is off it is refused, and that is fine
        std::memset(p, 0, bytes);
        return Tensor(type, Device::cpu, rows, cols, std::shared_ptr<void>(p, std::free), p);
    }
    Tensor place_readonly(GgmlType type, int64_t rows, int64_t cols, const void* host) override {
        return Tensor(type, Device::cpu, rows, cols, nullptr, const_cast<void*>(host)); // borrowed: no copy
    }
    void upload(const void* host, const Tensor& dst) override { std::memcpy(dst.raw(), host, dst.bytes()); }
    void download(const Tensor& src, void* host) override { std::memcpy(host, src.raw(), src.bytes()); }
    void synchronize() override {}

    void get_rows(const Matrix& table, const Tensor& ids, const Tensor& out) override {
        check_f32(out, "get_rows output");
        check_shape(out, ids.rows(), table.cols, "get_rows output");
        const int32_t* id = ids.data<int32_t>();
        for (int64_t i = 0; i < ids.rows(); ++i) {
            if (id[i] < 0 || id[i] >= table.rows) throw Error(ErrorKind::invalid_argument, "get_rows: id " + std::to_string(id[i]) + " out of range");
            dequantize_row(table.type, table.row(id[i]), out.f32() + i * table.cols, table.cols);
        }
    }

    void linear(const Matrix& w, const Tensor* bias, const Tensor& xt, const Tensor& yt) override {
        check_f32(xt, "linear input");
        check_f32(yt, "linear output");
        check_shape(xt, xt.rows(), w.cols, "linear input");
        check_shape(yt, xt.rows(), w.rows, "linear output");
        const int n_tokens = static_cast<int>(xt.rows());
        const float* x = xt.f32();
        float* y = yt.f32();
        const int64_t rows = w.rows, cols = w.cols;
        const float* b = bias ? bias->f32() : nullptr;
        if (mode_ == CpuDotMode::q8 && cpu::has_q8_gemm_path(w.type) && n_tokens > 1) {
            cpu::gemm_q8(w, b, x, n_tokens, y, n_threads_, gemm_q8_);
            return;
        }
        // decode: llama.cpp's scheme, one token (automatic: here only; its prefill batches take the f32 path below)
        if (mode_ != CpuDotMode::f32 && cpu::has_q8_path(w.type) && n_tokens == 1) {
            cpu::gemv_q8(w, b, x, y, n_threads_, gemm_q8_);
            return;
        }
        if (n_tokens == 1) {
            // decode: one dot product per row straight from the stored format
            cpu::prepare_activation(w.type, x, cols, prepared_);
            const cpu::PreparedActivation& px = prepared_;
#pragma omp parallel for num_threads(n_threads_) schedule(static)
            for (int64_t r = 0; r < rows; ++r)
                y[r] = cpu::vec_dot(w.type, w.row(r), px, cols) + (b ? b[r] : 0.0f);
            return;
        }
        // prefill: weight blocks decoded once, multiplied with every token by sgemm
        cpu::gemm_f32(w, b, x, n_tokens, y, n_threads_);
    }

    void rms_norm(const Tensor& x, const Tensor& w, float eps, const Tensor& y) override {
        check_f32(x, "rms_norm input");
        check_shape(y, x.rows(), x.cols(), "rms_norm output");
        const int64_t C = x.cols();
        for_row_ranges(x.rows(), C, [&](int64_t r0, int64_t r1) {
            ref::rmsnorm_forward<float>(y.f32() + r0 * C, nullptr, x.f32() + r0 * C, w.f32(), static_cast<int>(r1 - r0), static_cast<int>(C), eps);
        });
    }

    void layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps, const Tensor& y) override {
        check_f32(x, "layer_norm input");
        check_shape(y, x.rows(), x.cols(), "layer_norm output");
        const int64_t C = x.cols();
        for_row_ranges(x.rows(), C, [&](int64_t r0, int64_t r1) {
            ref::layernorm_forward<float>(y.f32() + r0 * C, nullptr, nullptr, x.f32() + r0 * C, w.f32(), b.f32(), static_cast<int>(r1 - r0), static_cast<int>(C), eps);
        });
    }

    void rope(const Tensor& x, const RopeParams& p) override {
        check_f32(x, "rope input");
        check_shape(x, x.rows(), static_cast<int64_t>(p.n_heads) * p.head_dim, "rope input");
        if (p.style == RopeStyle::none) return;
        const int pos0 = resolve_position(p.pos, p.pos0), half = p.rope_dim / 2;
        const float* cs = rope_table(p, pos0 + static_cast<int>(x.rows()));
        const int64_t C = x.cols();
        for_row_ranges(x.rows(), C, [&](int64_t r0, int64_t r1) { // row r sits at position pos0 + r
            for (int64_t r = r0; r < r1; ++r) {
                const float* csr = cs + static_cast<size_t>(pos0 + r) * half * 2;
                for (int i = 0; i < half; ++i) // ref::rope_apply's rotation, with the table's cos/sin
                    ref::rope_rotate_pair(x.f32() + r * C, p.n_heads, p.head_dim, half, i, p.style, csr[2 * i], csr[2 * i + 1]);
            }
        });
    }

    void copy_rows(const Tensor& src, const Tensor& dst, int64_t dst_row) override {
        check_f32(src, "copy_rows source");
        check_kv(dst, "copy_rows destination");
        if (src.cols() != dst.cols() || dst_row < 0 || dst_row + src.rows() > dst.rows())
            throw Error(ErrorKind::invalid_argument, "copy_rows: " + src.describe() + " does not fit " + dst.describe() + " at row " + std::to_string(dst_row));
        cpu::store_kv(dst.type(), src.f32(), dst.rows_view(dst_row, src.rows()).raw(), static_cast<size_t>(src.numel()));
    }

    void attention(const Tensor& qt, const Tensor& kt, const Tensor& vt, const Tensor& outt, const AttentionParams& params) override {
        AttentionParams p = params;
        p.pos0 = resolve_position(p.pos, p.pos0);
        const int n_tokens = static_cast<int>(qt.rows()), pos0 = p.pos0, head_dim = p.head_dim, n_head = p.n_head;
        const int kv_dim = p.n_head_kv * head_dim;
        if (pos0 + n_tokens > kt.rows() || kt.cols() != kv_dim || vt.cols() != kv_dim || qt.cols() != n_head * head_dim)
            throw Error(ErrorKind::invalid_argument, "attention: shapes q " + qt.describe() + " k " + kt.describe() + " do not match the parameters");
        check_kv(kt, "attention K cache");
        check_kv(vt, "attention V cache");
        if (kt.type() != vt.type())
            throw Error(ErrorKind::invalid_argument, "attention: K cache " + kt.describe() + " and V cache " + vt.describe() + " differ in type");
        if (p.mask) p.mask->check_heads(p.n_head_kv);
        if (p.mask && static_cast<int64_t>(p.mask->block) * p.mask->n_blocks < pos0 + n_tokens)
            throw Error(ErrorKind::invalid_argument, "attention: the block mask covers fewer positions than " + std::to_string(pos0 + n_tokens));
        check_shape(outt, n_tokens, static_cast<int64_t>(n_head) * head_dim, "attention output");
        check_block_selection(p, kt.rows());
        if (pos0 + n_tokens > attention_key_end(params, n_tokens, kt.rows())) // a device would have sized its launch short
            throw Error(ErrorKind::invalid_argument, "attention: rows up to position " + std::to_string(pos0 + n_tokens - 1) + " pass the key limit " +
                                                         std::to_string(p.key_limit));
        cpu::attention(kt.type(), qt.f32(), kt.raw(), vt.raw(), outt.f32(), n_tokens, p, n_threads_);
        if (p.capture) cpu::attention_head_mean_probs(kt.type(), qt.f32(), kt.raw(), n_tokens, p, p.capture, p.capture_stride, n_threads_);
    }

    void summarize_keys(const Tensor& k, const Tensor& kmax, const Tensor& kmin, int n_head_kv, int unit, int64_t row0, int n_rows,
                        const Tensor* row_at) override {
        row0 = resolve_position(row_at, static_cast<int>(row0));
        check_kv(k, "summarize_keys cache");
        check_summarize_keys_args(k, kmax, kmin, n_head_kv, unit, row0, n_rows, Device::cpu);
        const int kv_dim = static_cast<int>(k.cols()), hd = kv_dim / n_head_kv;
        const int64_t end = row0 + n_rows;
        for (int64_t u = row0 / unit; n_rows > 0 && u * unit < end; ++u)
            sparse::summarize_rows(k.type(), k.raw(), kv_dim, n_head_kv, u * unit, std::min((u + 1) * unit, end), kmax.data<uint16_t>() + u * hd,
                                   kmin.data<uint16_t>() + u * hd, static_cast<size_t>(kmax.cols()));
    }

    void gelu_tanh(const Tensor& x) override {
        check_f32(x, "gelu input");
        const int64_t C = x.cols();
        for_row_ranges(x.rows(), C, [&](int64_t r0, int64_t r1) {
            ref::gelu_forward<float>(x.f32() + r0 * C, x.f32() + r0 * C, static_cast<size_t>((r1 - r0) * C));
        });
    }

    void swiglu(const Tensor& gate, const Tensor& up, const Tensor& out) override {
        check_f32(gate, "swiglu gate");
        check_shape(up, gate.rows(), gate.cols(), "swiglu up");
        check_shape(out, gate.rows(), gate.cols(), "swiglu output");
        const int64_t C = gate.cols();
        for_row_ranges(gate.rows(), C, [&](int64_t r0, int64_t r1) {
            ref::swiglu_forward<float>(out.f32() + r0 * C, gate.f32() + r0 * C, up.f32() + r0 * C, static_cast<size_t>((r1 - r0) * C));
        });
    }

    void geglu(const Tensor& gate, const Tensor& up, const Tensor& out) override {
        check_f32(gate, "geglu gate");
        check_shape(up, gate.rows(), gate.cols(), "geglu up");
        check_shape(out, gate.rows(), gate.cols(), "geglu output");
        const int64_t C = gate.cols();
        for_row_ranges(gate.rows(), C, [&](int64_t r0, int64_t r1) {
            ref::geglu_forward<float>(out.f32() + r0 * C, gate.f32() + r0 * C, up.f32() + r0 * C, static_cast<size_t>((r1 - r0) * C));
        });
    }

    void scale(const Tensor& x, float s) override {
        check_f32(x, "scale input");
        const int64_t C = x.cols();
        for_row_ranges(x.rows(), C, [&](int64_t r0, int64_t r1) {
            float* p = x.f32() + r0 * C;
            for (int64_t i = 0, n = (r1 - r0) * C; i < n; ++i) p[i] *= s;
        });
    }

    void softcap(const Tensor& x, float cap) override {
        check_f32(x, "softcap input");
        check_softcap(cap);
        const int64_t C = x.cols();
        for_row_ranges(x.rows(), C, [&](int64_t r0, int64_t r1) { ref::softcap<float>(x.f32() + r0 * C, static_cast<size_t>((r1 - r0) * C), cap); });
    }

    void add(const Tensor& y, const Tensor& x) override {
        check_f32(y, "add destination");
        check_f32(x, "add source");
        if (x.cols() != y.cols() || (x.rows() != y.rows() && x.rows() != 1))
            throw Error(ErrorKind::invalid_argument, "add: " + x.describe() + " cannot be added to " + y.describe());
        const int64_t C = y.cols();
        const bool broadcast = x.rows() == 1 && y.rows() > 1;
        for_row_ranges(y.rows(), C, [&](int64_t r0, int64_t r1) {
            ref::add_rows<float>(y.f32() + r0 * C, x.f32() + (broadcast ? 0 : r0 * C), static_cast<size_t>(r1 - r0), broadcast ? 1 : static_cast<size_t>(r1 - r0),
                                 static_cast<size_t>(C));
        });
    }

    TopK top_k(const Tensor& logits, int k, bool want_log_norm) override {
        check_f32(logits, "top_k input");
        const int64_t n = logits.numel();
        if (logits.rows() != 1 || k < 1 || k > n) throw Error(ErrorKind::invalid_argument, "top_k: need one row and 1 <= k <= " + std::to_string(n));
        const float* l = logits.f32();
        TopK r;
        if (k == 1) { // argmax: the first maximum, as std::max_element (the sampler's greedy rule)
            r.ids.push_back(static_cast<int32_t>(std::max_element(l, l + n) - l));
        } else {
            std::vector<int32_t> idx(n);
            std::iota(idx.begin(), idx.end(), 0);
            std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
            r.ids.assign(idx.begin(), idx.begin() + k);
        }
        for (int32_t i : r.ids) r.logits.push_back(l[i]);
        if (want_log_norm) {
            const double mx = r.logits[0];
            double s = 0;
            // a -inf logit adds exactly 0, also when every logit is -inf (log Z = -inf, as the CUDA ops give: exp_term
            // of head_top_k_logic.cuh), where exp(-inf - -inf) would make the sum NaN
            for (int64_t i = 0; i < n; ++i)
                if (l[i] != -INFINITY) s += std::exp(static_cast<double>(l[i]) - mx);
            r.log_norm = mx + std::log(s);
        }
        return r;
    }

    // The twin of every device head_top_k: this backend's own linear, then its own top_k, so that the fused op is
    // held to exactly what the unfused pair gives (the logits row is a reused scratch, not a fresh allocation).
    TopK head_top_k(const Matrix& w, const Tensor& hidden, int k, bool want_log_norm) override {
        check_head_top_k_args(w, hidden, k, Device::cpu);
        if (head_logits_.cols() != w.rows) head_logits_ = alloc(GgmlType::F32, 1, w.rows);
        linear(w, nullptr, hidden, head_logits_);
        return top_k(head_logits_, k, want_log_norm);
    }

    // The host's sampler chain itself (backend/cpu/sample_cpu.h): the twin of every device sample kernel.
    void sample(const Tensor& logits, const SampleParams& p, const Tensor& token) override { cpu::sample(logits, p, token); }

private:
    // f(r0, r1) over ranges of rows that split [0, rows) among the threads; one call on the calling thread when the
    // op is too small to repay waking the others (decode: one row of a few hundred values).
    template <class F>
    void for_row_ranges(int64_t rows, int64_t cols, F f) const {
        if (n_threads_ == 1 || rows < 2 || rows * cols < kParallelElements) return f(0, rows);
#pragma omp parallel num_threads(n_threads_)
        {
            const int nt = omp_get_num_threads(), t = omp_get_thread_num();
            const int64_t r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
            if (r0 < r1) f(r0, r1);
        }
    }
    static constexpr int64_t kParallelElements = 16384;

    // cos and sin per (position, pair) for positions [0, n_pos), as ref::rope_cos_sin rounds them: computed once per
    // position instead of per token and layer (double pow, cos and sin were most of rope's time in prefill).
    const float* rope_table(const RopeParams& p, int n_pos) {
        const float* factors = checked_rope_factors(p);
        const int half = p.rope_dim / 2;
        const bool same_factors = factors ? rope_factors_.size() == static_cast<size_t>(half) && std::equal(factors, factors + half, rope_factors_.begin())
                                          : rope_factors_.empty();
        if (p.base != rope_base_ || p.rope_dim != rope_dim_ || !same_factors) {
            rope_cs_.clear(), rope_base_ = p.base, rope_dim_ = p.rope_dim;
            rope_factors_.assign(factors, factors ? factors + half : factors);
        }
        const int have = half > 0 ? static_cast<int>(rope_cs_.size() / (2 * half)) : 0;
        if (n_pos > have) {
            rope_cs_.resize(static_cast<size_t>(n_pos) * half * 2);
            for (int pos = have; pos < n_pos; ++pos)
                for (int i = 0; i < half; ++i)
                    ref::rope_cos_sin(pos, i, p.rope_dim, p.base, rope_cs_[(static_cast<size_t>(pos) * half + i) * 2],
                                      rope_cs_[(static_cast<size_t>(pos) * half + i) * 2 + 1], factors ? factors[i] : 1.0f);
        }
        return rope_cs_.data();
    }
    std::vector<float> rope_cs_;
    float rope_base_ = 0.0f;
    int rope_dim_ = 0;
    std::vector<float> rope_factors_; // the table's frequency factors (empty: none)

    int n_threads_;
    CpuDotMode mode_;
    cpu::GemmQ8Scratch gemm_q8_;       // packed operands of the tiled q8 product
    cpu::PreparedActivation prepared_; // reused across calls to avoid reallocating
    Tensor head_logits_;               // head_top_k's logits row
};

} // namespace

std::unique_ptr<Backend> make_cpu_backend(int n_threads, CpuDotMode mode) { return std::make_unique<CpuBackend>(n_threads, mode); }

} // namespace winnow
