#include "backend/backend.h"

#include <cmath>
#include <cstdint>

#include "winnow/error.h"

namespace winnow {

const char* to_string(Op op) {
    switch (op) {
    case Op::get_rows: return "get_rows";
    case Op::linear: return "linear";
    case Op::linear_parts: return "linear_parts";
    case Op::linear_add: return "linear_add";
    case Op::linear_swiglu: return "linear_swiglu";
    case Op::rms_norm: return "rms_norm";
    case Op::layer_norm: return "layer_norm";
    case Op::rope: return "rope";
    case Op::copy_rows: return "copy_rows";
    case Op::rope_store_kv: return "rope_store_kv";
    case Op::attention: return "attention";
    case Op::gelu_tanh: return "gelu_tanh";
    case Op::swiglu: return "swiglu";
    case Op::geglu: return "geglu";
    case Op::add: return "add";
    case Op::scale: return "scale";
    case Op::softcap: return "softcap";
    case Op::top_k: return "top_k";
    case Op::sample: return "sample";
    case Op::head_top_k: return "head_top_k";
    case Op::summarize_keys: return "summarize_keys";
    }
    return "?";
}

const char* to_string(CpuDotMode m) { return m == CpuDotMode::f32 ? "f32" : m == CpuDotMode::q8 ? "q8" : "auto"; }

void require_support(const Backend& be, Op op, GgmlType type) {
    if (!be.supports(op, type))
        throw Error(ErrorKind::unsupported, std::string("the ") + be.name() + " backend has no " + to_string(op) + " for " + ggml_type_name(type) +
                                                (op == Op::linear || op == Op::linear_parts || op == Op::linear_add || op == Op::linear_swiglu ||
                                                         op == Op::head_top_k || op == Op::get_rows
                                                     ? " weights"
                                                     : " tensors"));
}

const float* checked_rope_factors(const RopeParams& p) {
    if (!p.freq_factors) return nullptr;
    if (p.freq_factors->type() != GgmlType::F32 || p.freq_factors->numel() != p.rope_dim / 2)
        throw Error(ErrorKind::invalid_argument, "rope: frequency factors " + p.freq_factors->describe() + " are not " + std::to_string(p.rope_dim / 2) +
                                                     " F32 values, one per rotated pair");
    return p.freq_factors->f32();
}

void check_softcap(float cap) {
    if (!(cap > 0 && std::isfinite(cap))) throw Error(ErrorKind::invalid_argument, "softcap: the cap must be a finite number > 0");
}

void check_block_selection(const AttentionParams& p, int64_t cache_rows) {
    if (p.window < 0) throw Error(ErrorKind::invalid_argument, "attention: window must be >= 0");
    if (p.window > 0 && p.mask) throw Error(ErrorKind::unsupported, "attention: a sliding window with a block mask");
    if (!(p.softcap >= 0 && std::isfinite(p.softcap))) throw Error(ErrorKind::invalid_argument, "attention: softcap must be a finite number >= 0");
    if (p.softcap > 0 && p.mask) throw Error(ErrorKind::unsupported, "attention: a score soft cap with a block mask");
    if (p.select_blocks < 0) throw Error(ErrorKind::invalid_argument, "attention: select_blocks must be >= 0");
    if (p.select_blocks == 0) return;
    const KeyBlockSummary& ks = p.key_summary;
    if (!p.mask) throw Error(ErrorKind::invalid_argument, "attention: query-aware block selection needs a block mask");
    if (ks.block <= 0 || p.mask->block % ks.block != 0)
        throw Error(ErrorKind::invalid_argument, "attention: the selection block (" + std::to_string(ks.block) + ") must divide the mask's block (" +
                                                     std::to_string(p.mask->block) + ")");
    if (ks.n_blocks < 0 || ks.n_blocks > (cache_rows + ks.block - 1) / ks.block || (ks.n_blocks > 0 && (!ks.kmax || !ks.kmin)))
        throw Error(ErrorKind::invalid_argument, "attention: the key block summary has more blocks than the cache holds");
}

int64_t attention_key_end(const AttentionParams& p, int n_rows, int64_t cache_rows) {
    if (!p.pos) return p.pos0 + n_rows;
    if (p.key_limit < 0 || p.key_limit > cache_rows || (p.key_limit > 0 && p.key_limit < n_rows))
        throw Error(ErrorKind::invalid_argument, "attention: key limit " + std::to_string(p.key_limit) + " outside [" + std::to_string(n_rows) + ", " +
                                                     std::to_string(cache_rows) + "] (the rows, the cache)");
    return p.key_limit > 0 ? p.key_limit : cache_rows;
}

void check_summarize_keys_args(const Tensor& k_cache, const Tensor& kmax, const Tensor& kmin, int n_head_kv, int unit, int64_t row0, int n_rows,
                               Device device) {
    if (k_cache.device() != device || kmax.device() != device || kmin.device() != device)
        throw Error(ErrorKind::invalid_argument, "summarize_keys: the cache and the summaries must be on the backend's device");
    if (unit < 1 || n_rows < 0 || row0 < 0 || row0 + n_rows > k_cache.rows())
        throw Error(ErrorKind::invalid_argument, "summarize_keys: rows [" + std::to_string(row0) + ", " + std::to_string(row0 + n_rows) + ") in units of " +
                                                     std::to_string(unit) + " do not fit " + k_cache.describe());
    if (n_head_kv < 1 || k_cache.cols() % n_head_kv != 0)
        throw Error(ErrorKind::invalid_argument, "summarize_keys: " + std::to_string(n_head_kv) + " KV heads do not divide " + k_cache.describe());
    const int64_t units = (k_cache.rows() + unit - 1) / unit, head_dim = k_cache.cols() / n_head_kv;
    for (const Tensor* t : {&kmax, &kmin})
        if (t->type() != GgmlType::F16 || t->rows() != n_head_kv || t->cols() != units * head_dim)
            throw Error(ErrorKind::invalid_argument, "summarize_keys: a summary is " + t->describe() + ", expected F16 [" + std::to_string(n_head_kv) +
                                                         " KV heads][" + std::to_string(units) + " units x " + std::to_string(head_dim) + "] for " +
                                                         k_cache.describe());
}

void BlockMask::validate() const {
    if (block < 1 || n_blocks < 1 || groups < 1 || keep.size() != static_cast<size_t>(groups) * n_blocks * n_blocks)
        throw Error(ErrorKind::invalid_argument, "block mask: need block >= 1, n_blocks >= 1, groups >= 1 and groups x n_blocks^2 entries");
    for (int g = 0; g < groups; ++g)
        for (int b = 0; b < n_blocks; ++b)
            if (!row(b, g)[b])
                throw Error(ErrorKind::invalid_argument, "block mask: diagonal block " + std::to_string(b) + " of group " + std::to_string(g) +
                                                             " is not kept (its rows would attend to nothing)");
}

void BlockMask::check_heads(int n_head_kv) const {
    if (groups != 1 && groups != n_head_kv)
        throw Error(ErrorKind::invalid_argument, "block mask: " + std::to_string(groups) + " head groups for a layer with " + std::to_string(n_head_kv) +
                                                     " KV heads (need 1 or " + std::to_string(n_head_kv) + ")");
}

void Backend::copy_rows_at(const Tensor& src, const Tensor& dst, const Tensor& row) {
    if (row.type() != GgmlType::I32 || row.numel() != 1) throw Error(ErrorKind::invalid_argument, "copy_rows_at: the row must be one I32, got " + row.describe());
    int32_t r = 0;
    download(row, &r);
    copy_rows(src, dst, r);
}

// The sequence the op is defined by, exactly as Forward issued it before the op existed: the CPU backend runs it, and a
// device backend's fused kernel must give its bits.
void Backend::rope_store_kv(const Tensor& q, const Tensor& k, const Tensor& v, const RopeParams& p, int n_head_kv, const Tensor& k_cache,
                            const Tensor& v_cache, int64_t dst_row, const Tensor* row_at) {
    rope(q, p);
    RopeParams kp = p;
    kp.n_heads = n_head_kv;
    rope(k, kp);
    if (row_at) {
        copy_rows_at(k, k_cache, *row_at);
        copy_rows_at(v, v_cache, *row_at);
    } else {
        copy_rows(k, k_cache, dst_row);
        copy_rows(v, v_cache, dst_row);
    }
}

void Backend::rms_norm_qkv_rope_store_kv(const Tensor& x, const InputRmsNorm& norm, const LinearPart* qkv, const RopeParams& p, int n_head_kv,
                                         const Tensor& k_cache, const Tensor& v_cache, int64_t dst_row, const Tensor* row_at) {
    rms_norm_linear_parts(x, norm, qkv, 3);
    rope_store_kv(qkv[0].y, qkv[1].y, qkv[2].y, p, n_head_kv, k_cache, v_cache, dst_row, row_at);
}

void Backend::linear_parts(const LinearPart* parts, int n_parts, const Tensor& x) { unfused_linear_parts(parts, n_parts, x); }

void Backend::linear_add(const Matrix& w, const Tensor* bias, const Tensor& x, const Tensor& y) { unfused_linear_add(w, bias, x, y); }

void Backend::linear_swiglu(const Matrix& w_gate, const Matrix& w_up, const Tensor& x, const Tensor& y) { unfused_linear_swiglu(w_gate, w_up, x, y); }

void check_input_norm(const InputRmsNorm& norm, const char* op) {
    if (!norm.weight || !norm.scratch) throw Error(ErrorKind::invalid_argument, std::string(op) + ": the input norm needs its weight and scratch");
}

void Backend::rms_norm_linear_parts(const Tensor& x, const InputRmsNorm& norm, const LinearPart* parts, int n_parts) {
    check_input_norm(norm, "rms_norm_linear_parts");
    rms_norm(x, *norm.weight, norm.eps, *norm.scratch);
    linear_parts(parts, n_parts, *norm.scratch);
}

void Backend::rms_norm_linear_swiglu(const Tensor& x, const InputRmsNorm& norm, const Matrix& w_gate, const Matrix& w_up, const Tensor& y) {
    check_input_norm(norm, "rms_norm_linear_swiglu");
    rms_norm(x, *norm.weight, norm.eps, *norm.scratch);
    linear_swiglu(w_gate, w_up, *norm.scratch, y);
}

Tensor Backend::fused_scratch(int64_t rows, int64_t cols) {
    if (fused_scratch_.numel() < rows * cols) fused_scratch_ = alloc(GgmlType::F32, 1, rows * cols);
    return fused_scratch_.prefix_view(rows, cols);
}

void Backend::unfused_linear_parts(const LinearPart* parts, int n_parts, const Tensor& x) {
    for (int i = 0; i < n_parts; ++i) linear(parts[i].w, parts[i].bias, x, parts[i].y);
}

// (what the CPU backend runs: a fused kernel would gain little on a host, where the scratch stays in cache)
void Backend::unfused_linear_add(const Matrix& w, const Tensor* bias, const Tensor& x, const Tensor& y) {
    const Tensor product = fused_scratch(x.rows(), w.rows);
    linear(w, bias, x, product);
    add(y, product);
}

void check_linear_swiglu_args(const Matrix& w_gate, const Matrix& w_up) {
    if (w_gate.type != w_up.type || w_gate.rows != w_up.rows || w_gate.cols != w_up.cols)
        throw Error(ErrorKind::invalid_argument, std::string("linear_swiglu: the gate and up matrices differ in type or shape (") + ggml_type_name(w_gate.type) +
                                                     " [" + std::to_string(w_gate.rows) + "][" + std::to_string(w_gate.cols) + "], " + ggml_type_name(w_up.type) +
                                                     " [" + std::to_string(w_up.rows) + "][" + std::to_string(w_up.cols) + "])");
}

// up into y, gate into the scratch, then swiglu in place
void Backend::unfused_linear_swiglu(const Matrix& w_gate, const Matrix& w_up, const Tensor& x, const Tensor& y) {
    check_linear_swiglu_args(w_gate, w_up);
    const Tensor gate = fused_scratch(x.rows(), w_gate.rows);
    linear(w_up, nullptr, x, y);
    linear(w_gate, nullptr, x, gate);
    swiglu(gate, y, y);
}

void Backend::sample(const Tensor&, const SampleParams&, const Tensor&) {
    throw Error(ErrorKind::unsupported, std::string("the ") + name() + " backend has no sample op");
}

void check_head_top_k_args(const Matrix& w, const Tensor& hidden, int k, Device device) {
    auto bad = [](const std::string& m) { throw Error(ErrorKind::invalid_argument, "head_top_k: " + m); };
    if (w.empty() || w.rows < 1 || w.cols < 1) bad("the head matrix is empty");
    if (w.rows > INT32_MAX - 1024) bad("the head has " + std::to_string(w.rows) + " rows; ids are int32");
    if (hidden.device() != device || hidden.type() != GgmlType::F32)
        bad("the hidden state must be an F32 tensor on " + std::string(to_string(device)) + ", got " + hidden.describe());
    if (hidden.rows() != 1 || hidden.cols() != w.cols)
        bad("the hidden state must be one row of " + std::to_string(w.cols) + ", got " + hidden.describe());
    if (k < 1 || k > w.rows) bad("need 1 <= k <= " + std::to_string(w.rows) + " (the head's rows), got k = " + std::to_string(k));
}

TopK Backend::head_top_k(const Matrix& w, const Tensor& hidden, int k, bool want_log_norm) {
    check_head_top_k_args(w, hidden, k, device());
    const Tensor logits = alloc(GgmlType::F32, 1, w.rows);
    linear(w, nullptr, hidden, logits);
    return top_k(logits, k, want_log_norm);
}

int64_t check_sample_args(const Tensor& logits, const SampleParams& p, const Tensor& token, Device device) {
    auto bad = [](const std::string& m) { throw Error(ErrorKind::invalid_argument, "sample: " + m); };
    p.chain.validate();
    auto on_device = [&](const Tensor& t, GgmlType type, const char* what) {
        if (t.device() != device || t.type() != type)
            bad(std::string(what) + " must be a " + ggml_type_name(type) + " tensor on " + to_string(device) + ", got " + t.describe());
    };
    on_device(logits, GgmlType::F32, "the logits");
    // (the kernel's strided int loops step past n by up to a block: keep n + 1024 inside int32)
    if (logits.rows() != 1 || logits.cols() < 1 || logits.cols() > INT32_MAX - 1024) bad("need one row of logits, got " + logits.describe());
    on_device(token, GgmlType::I32, "the token");
    if (token.numel() != 1) bad("the token must be one I32, got " + token.describe());
    const bool greedy = p.chain.temperature <= 0.0f;
    if (!greedy) {
        if (!p.u) bad("a drawing chain (temperature > 0) needs u");
        on_device(*p.u, GgmlType::I32, "u");
        if (p.u->numel() != 2) bad("u must be two I32s (a double's 8 bytes), got " + p.u->describe());
        // a device reads u as one double: a view at a 4-byte offset would fault there (the CPU twin would not notice)
        if (reinterpret_cast<uintptr_t>(p.u->raw()) % alignof(double) != 0) bad("u must be 8-byte aligned, got " + p.u->describe());
    }
    const bool reads_history = (p.chain.repeat_penalty != 1.0f && p.chain.repeat_last_n != 0) || p.append;
    if (reads_history) {
        if (!p.history) bad("the repetition penalty (or append) needs the history");
        on_device(*p.history, GgmlType::I32, "the history");
        if (p.history->cols() != 1) bad("the history must be I32 [n][1], got " + p.history->describe());
    }
    if (p.n_history_at) {
        on_device(*p.n_history_at, GgmlType::I32, "the history length");
        if (p.n_history_at->numel() != 1) bad("the history length must be one I32, got " + p.n_history_at->describe());
    } else if (p.n_history < 0 || (p.history && p.n_history > p.history->rows())) {
        bad("history length " + std::to_string(p.n_history) + " outside the history tensor");
    }
    return logits.cols();
}

void Backend::begin_recording() { throw Error(ErrorKind::unsupported, std::string("the ") + name() + " backend cannot record ops"); }
int Backend::end_recording() { throw Error(ErrorKind::unsupported, std::string("the ") + name() + " backend cannot record ops"); }
void Backend::replay(int) { throw Error(ErrorKind::unsupported, std::string("the ") + name() + " backend cannot record ops"); }

int resolve_position(const Tensor* pos, int pos0) {
    if (!pos) return pos0;
    if (pos->device() != Device::cpu || pos->type() != GgmlType::I32 || pos->numel() != 1)
        throw Error(ErrorKind::invalid_argument, "an op's position must be one I32 in host memory here, got " + pos->describe());
    return *pos->data<int32_t>();
}

float AttentionParams::effective_scale() const { return scale != 0 ? scale : 1.0f / std::sqrt(static_cast<float>(head_dim)); }

} // namespace winnow
