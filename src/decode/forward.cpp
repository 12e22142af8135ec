#include "decode/forward.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "winnow/error.h"

namespace winnow {

Forward::Forward(const LoadedModel& model, Backend& backend, int n_ctx, GgmlType cache_type)
    : c_(model.config()), be_(backend), w_(place_weights(backend, model.weights(), model.config().n_embd)),
      cache_(backend, c_.n_layer, n_ctx > 0 ? n_ctx : c_.n_ctx_train, c_.n_head_kv * c_.head_dim, cache_type) {
    if (c_.arch == Arch::gpt2 && cache_.n_ctx() > c_.n_ctx_train)
        throw Error(ErrorKind::invalid_argument, "context " + std::to_string(cache_.n_ctx()) + " exceeds gpt2's " +
                                                     std::to_string(c_.n_ctx_train) + " learned positions");
    check_support();
    hidden_ = be_.alloc(GgmlType::F32, 1, c_.n_embd);
    const char* env = std::getenv("WINNOW_CUDA_GRAPHS");
    record_steps_ = be_.can_record() && !(env && std::strcmp(env, "0") == 0);
    step_in_ = be_.alloc(GgmlType::I32, 6, 1); // 24 bytes; the alloc's alignment puts u (at byte 16) on 8 bytes
    step_ = {step_in_.rows_view(0, 1), step_in_.rows_view(1, 1), step_in_.rows_view(2, 1), step_in_.rows_view(4, 2)};
}

int recorded_step_key_limit(int keys, int n_ctx) {
    if (keys < 1 || keys > n_ctx)
        throw Error(ErrorKind::invalid_argument, "step key limit: " + std::to_string(keys) + " keys outside a context of " + std::to_string(n_ctx));
    int64_t limit = kMinStepKeys;
    while (limit < keys) limit *= 2;
    return static_cast<int>(std::min<int64_t>(limit, n_ctx));
}

Forward::~Forward() { drop_step_recording(); }

void Forward::set_step_recording(bool on) {
    if (on && !be_.can_record()) throw Error(ErrorKind::unsupported, std::string("the ") + be_.name() + " backend cannot record decode steps");
    if (!on) drop_step_recording();
    record_steps_ = on;
}

void Forward::drop_step_recording() {
    if (step_recording_ >= 0) be_.drop_recording(step_recording_);
    step_recording_ = -1;
    recorded_tail_ = 0;
    recorded_key_limit_ = 0;
    decoded_once_ = false;
}

void Forward::check_support() const {
    require_support(be_, Op::get_rows, w_.tok_embd.type);
    require_support(be_, Op::linear, w_.output.type);
    for (const DeviceLayerWeights& l : w_.layers)
        for (const Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
            if (!m->empty()) require_support(be_, Op::linear, m->type);
    // The fused linear ops run wherever linear does (Backend's defaults run the unfused sequence), so the layers call
    // them without a fallback of their own; a backend that says otherwise is refused here, by name.
    for (const DeviceLayerWeights& l : w_.layers) {
        for (const Matrix* m : {&l.wq, &l.wk, &l.wv})
            if (!m->empty()) require_support(be_, Op::linear_parts, m->type);
        for (const Matrix* m : {&l.wo, &l.w_down})
            if (!m->empty()) require_support(be_, Op::linear_add, m->type);
        if (fused_swiglu(l)) require_support(be_, Op::linear_swiglu, l.w_up.type);
    }
    require_support(be_, c_.arch == Arch::gpt2 ? Op::layer_norm : Op::rms_norm, GgmlType::F32);
    const Op activation = c_.arch == Arch::gpt2 ? Op::gelu_tanh : c_.gate_act == GateActivation::gelu_tanh ? Op::geglu : Op::swiglu;
    require_support(be_, activation, GgmlType::F32);
    if (c_.embd_scale != 0) require_support(be_, Op::scale, GgmlType::F32);
    if (c_.final_softcap != 0) require_support(be_, Op::softcap, GgmlType::F32);
    if (c_.rope != RopeStyle::none) require_support(be_, Op::rope, GgmlType::F32);
    require_support(be_, Op::rope_store_kv, cache_.type()); // every layer's rope and cache write (gpt2's: the write alone)
    require_support(be_, Op::add, GgmlType::F32);
}

void Forward::set_attention_capture(AttentionCapture on_layer, bool per_group) {
    if (on_layer && be_.device() != Device::cpu) throw Error(ErrorKind::unsupported, "attention capture runs on the CPU backend only");
    capture_ = std::move(on_layer);
    capture_per_group_ = per_group;
    if (!capture_) capture_buf_ = {};
}

void Forward::set_attention_masks(const std::vector<BlockMask>& per_layer) {
    std::vector<const BlockMask*> ptrs;
    for (const BlockMask& m : per_layer) ptrs.push_back(&m);
    set_attention_masks(std::move(ptrs));
}

void Forward::set_attention_masks(std::vector<const BlockMask*> per_layer) {
    if (!per_layer.empty() && static_cast<int>(per_layer.size()) != c_.n_layer)
        throw Error(ErrorKind::invalid_argument, "attention masks: " + std::to_string(per_layer.size()) + " given for " +
                                                     std::to_string(c_.n_layer) + " layers");
    for (int i = 0; i < static_cast<int>(per_layer.size()); ++i)
        if (per_layer[i] && c_.layer_slides(i))
            throw Error(ErrorKind::unsupported, "sparse attention: layer " + std::to_string(i) + " of this " + c_.architecture() +
                                                    " model attends through a sliding window; block-sparse patterns are not supported on such models");
    for (const BlockMask* m : per_layer)
        if (m) {
            m->validate();
            if (static_cast<int64_t>(m->block) * m->n_blocks < cache_.n_ctx())
                throw Error(ErrorKind::invalid_argument, "attention mask covers " + std::to_string(m->block * m->n_blocks) +
                                                             " positions, the context holds " + std::to_string(cache_.n_ctx()));
        }
    masks_ = std::move(per_layer);
    // a layer's summaries were kept only while it had a mask: summarise every row again when a mask comes (back)
    for (LayerKeySummary& s : key_summaries_) s.unit = 0;
    drop_step_recording(); // it holds the old masks
}

void Forward::set_block_selection(int blocks_per_row, int block_size) {
    if (blocks_per_row < 0 || block_size < 0) throw Error(ErrorKind::invalid_argument, "block selection: blocks per row and block size must be >= 0");
    for (const BlockMask* m : masks_)
        if (m && block_size > 0 && m->block % block_size != 0)
            throw Error(ErrorKind::invalid_argument, "block selection: " + std::to_string(block_size) + "-token blocks do not divide the pattern's " +
                                                         std::to_string(m->block) + "-token blocks");
    if (blocks_per_row > 0) require_support(be_, Op::summarize_keys, cache_.type());
    select_blocks_ = blocks_per_row;
    select_block_size_ = block_size;
    key_summaries_.assign(blocks_per_row > 0 ? c_.n_layer : 0, {});
    drop_step_recording(); // it holds the old selection (or none)
}

KeyBlockSummary Forward::update_key_summary(int layer, int unit, int n, const Tensor* pos) {
    LayerKeySummary& s = key_summaries_[layer];
    const Tensor& kc = cache_.k(layer);
    const int64_t units = (kc.rows() + unit - 1) / unit;
    if (s.unit != unit) {
        // First use, or another pattern's block. Allocating is not allowed while recording, and it never happens then:
        // a recorded step follows an op-by-op one, which got here first. The rows cached before this write are
        // summarised too.
        s.kmax = be_.alloc(GgmlType::F16, c_.n_head_kv, units * c_.head_dim); // a plane per KV head (KeyBlockSummary)
        s.kmin = be_.alloc(GgmlType::F16, c_.n_head_kv, units * c_.head_dim);
        s.unit = unit;
        if (n_past_ > 0) be_.summarize_keys(kc, s.kmax, s.kmin, c_.n_head_kv, unit, 0, n_past_);
    }
    be_.summarize_keys(kc, s.kmax, s.kmin, c_.n_head_kv, unit, n_past_, n, pos);
    return {unit, static_cast<int>(units), s.kmax.data<uint16_t>(), s.kmin.data<uint16_t>()};
}

void Forward::ensure_scratch(int n) {
    if (n <= scratch_tokens_) return;
    drop_step_recording(); // it holds the old scratch tensors' addresses
    const int64_t d = c_.n_embd, qd = static_cast<int64_t>(c_.n_head) * c_.head_dim, kvd = static_cast<int64_t>(c_.n_head_kv) * c_.head_dim;
    ids_ = be_.alloc(GgmlType::I32, n, 1);
    x_ = be_.alloc(GgmlType::F32, n, d);
    xn_ = be_.alloc(GgmlType::F32, n, d);
    q_ = be_.alloc(GgmlType::F32, n, qd);
    k_ = be_.alloc(GgmlType::F32, n, kvd);
    v_ = be_.alloc(GgmlType::F32, n, kvd);
    att_ = be_.alloc(GgmlType::F32, n, qd);
    proj_ = be_.alloc(GgmlType::F32, 1, d); // gpt2's position row in a recorded step (the residuals add in place)
    up_ = be_.alloc(GgmlType::F32, n, c_.n_ff);
    if (c_.arch == Arch::llama) gate_ = be_.alloc(GgmlType::F32, n, c_.n_ff);
    if (head_norms()) { // the normalised heads: rms_norm's output is not its input on any backend
        qn_ = be_.alloc(GgmlType::F32, n, qd);
        kn_ = be_.alloc(GgmlType::F32, n, kvd);
    }
    if (post_norms()) post_ = be_.alloc(GgmlType::F32, n, d);
    scratch_tokens_ = n;
}

void Forward::norm(const Tensor& w, const Tensor& b, const Tensor& x, const Tensor& y) {
    if (c_.arch == Arch::gpt2) be_.layer_norm(x, w, b, c_.norm_eps, y);
    else be_.rms_norm(x, w, c_.norm_eps, y);
}

namespace {
const Tensor* bias(const Tensor& b) { return b.empty() ? nullptr : &b; }
} // namespace

void Forward::attention_block(const DeviceLayerWeights& l, int layer, int n, const Tensor* pos) {
    const Tensor x = x_.rows_view(0, n), xn = xn_.rows_view(0, n), q = q_.rows_view(0, n), k = k_.rows_view(0, n),
                 v = v_.rows_view(0, n), att = att_.rows_view(0, n);
    const LinearPart qkv[] = {{l.wq, bias(l.bq), q}, {l.wk, bias(l.bk), k}, {l.wv, bias(l.bv), v}};
    // rope(q), rope(k) and the k, v cache writes at the step's position: one launch on a device (four on the CPU, the
    // same bits); for llama also the RMSNorm and the projections before them (a decode step's one launch on a device)
    // a sliding-window layer (gemma3) rotates with its own base and never scaled; the others with the model's
    const bool slides = c_.layer_slides(layer);
    const RopeParams rp{c_.n_head, c_.head_dim, c_.rope_dim, n_past_, slides && c_.rope_base_sliding > 0 ? c_.rope_base_sliding : c_.rope_base, c_.rope, pos,
                        w_.rope_freqs.empty() || slides ? nullptr : &w_.rope_freqs};
    Tensor q_rotated = q; // what attention reads
    if (c_.arch == Arch::llama && !l.q_norm.empty()) {
        // qwen3, gemma3: each q and k head RMS-normalised (weights [head_dim], the layer's eps) between the projections and RoPE;
        // the same ops unfused, the heads as rows of a [n * heads][head_dim] view
        be_.rms_norm_linear_parts(x, {&l.attn_norm, c_.norm_eps, &xn}, qkv, 3);
        const Tensor qn = qn_.rows_view(0, n), kn = kn_.rows_view(0, n);
        auto norm_heads = [&](const Tensor& in, const Tensor& w, int heads, const Tensor& out) {
            const int64_t rows = int64_t{n} * heads;
            be_.rms_norm(in.prefix_view(rows, c_.head_dim), w, c_.norm_eps, out.prefix_view(rows, c_.head_dim));
        };
        norm_heads(q, l.q_norm, c_.n_head, qn);
        norm_heads(k, l.k_norm, c_.n_head_kv, kn);
        be_.rope_store_kv(qn, kn, v, rp, c_.n_head_kv, cache_.k(layer), cache_.v(layer), n_past_, pos);
        q_rotated = qn;
    } else if (c_.arch == Arch::llama) {
        be_.rms_norm_qkv_rope_store_kv(x, {&l.attn_norm, c_.norm_eps, &xn}, qkv, rp, c_.n_head_kv, cache_.k(layer), cache_.v(layer), n_past_, pos);
    } else {
        norm(l.attn_norm, l.attn_norm_b, x, xn);
        be_.linear_parts(qkv, 3, xn); // one launch on a device
        be_.rope_store_kv(q, k, v, rp, c_.n_head_kv, cache_.k(layer), cache_.v(layer), n_past_, pos);
    }
    AttentionParams ap;
    ap.pos0 = n_past_;
    ap.pos = pos;
    ap.key_limit = pos ? step_key_limit_ : 0;
    ap.n_head = c_.n_head;
    ap.n_head_kv = c_.n_head_kv;
    ap.head_dim = c_.head_dim;
    ap.scale = c_.attn_scale;
    ap.window = slides ? c_.sliding_window : 0;
    ap.softcap = c_.attn_softcap;
    ap.mask = masks_.empty() ? nullptr : masks_[layer];
    if (select_blocks_ > 0 && ap.mask) {
        ap.select_blocks = select_blocks_;
        ap.key_summary = update_key_summary(layer, sparse::selection_unit(select_block_size_, ap.mask->block), n, pos);
    }
    if (capture_) {
        ap.capture_stride = n_past_ + n;
        ap.capture_per_group = capture_per_group_;
        capture_buf_.resize(static_cast<size_t>(capture_groups()) * n * ap.capture_stride);
        ap.capture = capture_buf_.data();
    }
    be_.attention(q_rotated, cache_.k(layer), cache_.v(layer), att, ap);
    if (capture_)
        for (int g = 0; g < capture_groups(); ++g)
            capture_(layer, g, capture_buf_.data() + static_cast<size_t>(g) * n * ap.capture_stride, n, ap.capture_stride);
    if (!l.post_attn_norm.empty()) {
        be_.linear(l.wo, bias(l.bo), att, xn);
        return add_block_output(l.post_attn_norm, xn, x, n);
    }
    be_.linear_add(l.wo, bias(l.bo), att, x); // x += Wo att (+ b): the residual add in the GEMV's epilogue on a device
}

void Forward::add_block_output(const Tensor& post_norm, const Tensor& y, const Tensor& x, int n) {
    const Tensor normed = post_.rows_view(0, n);
    be_.rms_norm(y, post_norm, c_.norm_eps, normed);
    be_.add(x, normed);
}

void Forward::ffn_block(const DeviceLayerWeights& l, int n) {
    const Tensor x = x_.rows_view(0, n), xn = xn_.rows_view(0, n), up = up_.rows_view(0, n);
    if (fused_swiglu(l)) {
        // the same bits as the norm and the three ops below, in one launch on a device
        be_.rms_norm_linear_swiglu(x, {&l.ffn_norm, c_.norm_eps, &xn}, l.w_gate, l.w_up, up);
        be_.linear_add(l.w_down, bias(l.b_down), up, x);
        return;
    }
    norm(l.ffn_norm, l.ffn_norm_b, x, xn);
    if (c_.arch == Arch::llama) { // linear_swiglu takes no up bias and one weight type for both matrices
        const Tensor gate = gate_.rows_view(0, n);
        be_.linear(l.w_up, bias(l.b_up), xn, up);
        be_.linear(l.w_gate, nullptr, xn, gate);
        if (c_.gate_act == GateActivation::gelu_tanh) be_.geglu(gate, up, up);
        else be_.swiglu(gate, up, up);
    } else {
        be_.linear(l.w_up, bias(l.b_up), xn, up);
        be_.gelu_tanh(up);
    }
    if (!l.post_ffn_norm.empty()) {
        be_.linear(l.w_down, bias(l.b_down), up, xn);
        return add_block_output(l.post_ffn_norm, xn, x, n);
    }
    be_.linear_add(l.w_down, bias(l.b_down), up, x);
}

bool Forward::head_norms() const {
    for (const DeviceLayerWeights& l : w_.layers)
        if (!l.q_norm.empty()) return true;
    return false;
}

bool Forward::post_norms() const {
    for (const DeviceLayerWeights& l : w_.layers)
        if (!l.post_attn_norm.empty() || !l.post_ffn_norm.empty()) return true;
    return false;
}

bool Forward::fused_swiglu(const DeviceLayerWeights& l) const {
    return c_.arch == Arch::llama && c_.gate_act == GateActivation::silu && l.b_up.empty() && l.w_gate.type == l.w_up.type && l.post_ffn_norm.empty();
}

void Forward::run_layers(std::span<const int32_t> tokens, int head_rows, const StepTail* tail, const StepValues& values) {
    const int n = static_cast<int>(tokens.size());
    if (n == 0) throw Error(ErrorKind::invalid_argument, "eval: no tokens");
    if (n_past_ + n > cache_.n_ctx())
        throw Error(ErrorKind::invalid_argument, std::to_string(n_past_ + n) + " tokens exceed the context of " + std::to_string(cache_.n_ctx()));
    for (int32_t id : tokens)
        if (id < 0 || id >= c_.n_vocab)
            throw Error(ErrorKind::invalid_argument, "token id " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(c_.n_vocab) + ")");
    ensure_scratch(n);
    if (n == 1 && decode_step_recorded(tokens[0], tail, values)) {
        n_past_ += 1;
        return;
    }
    Tensor ids = ids_.rows_view(0, n);
    if (tail) upload_step_inputs(tokens[0], &values);
    if (tail && n == 1) ids = step_.token; // already up with the tail's values: one upload
    else be_.upload(tokens.data(), ids);
    issue_ops(ids, n, head_rows, nullptr);
    if (tail) tail->issue(hidden_, step_);
    n_past_ += n;
}

void Forward::issue_ops(const Tensor& ids, int n, int head_rows, const Tensor* pos) {
    const Tensor x = x_.rows_view(0, n);
    be_.get_rows(w_.tok_embd, ids, x);
    if (c_.embd_scale != 0) be_.scale(x, c_.embd_scale); // gemma3: the embedding rows times sqrt(n_embd)
    if (!w_.pos_embd.empty()) {
        if (pos) { // gpt2's learned position row, looked up at the device position: get_rows into scratch, then add
            const Matrix table{GgmlType::F32, w_.pos_embd.rows(), w_.pos_embd.cols(), w_.pos_embd.row_bytes(),
                               static_cast<const uint8_t*>(w_.pos_embd.raw()), "position_embd"};
            const Tensor row = proj_.rows_view(0, 1);
            be_.get_rows(table, *pos, row);
            be_.add(x, row);
        } else {
            be_.add(x, w_.pos_embd.rows_view(n_past_, n));
        }
    }

    for (int i = 0; i < c_.n_layer; ++i) {
        attention_block(w_.layers[i], i, n, pos);
        ffn_block(w_.layers[i], n);
    }

    // final norm of the last head_rows tokens only (the rows a head will read); the last one is the hidden state. One
    // row (every decode step): normalised straight into hidden_, one launch fewer than the norm and a copy.
    const Tensor last = x_.rows_view(n - head_rows, head_rows);
    if (head_rows == 1) {
        norm(w_.out_norm, w_.out_norm_b, last, hidden_);
    } else {
        norm(w_.out_norm, w_.out_norm_b, last, xn_.rows_view(0, head_rows));
        be_.copy_rows(xn_.rows_view(head_rows - 1, 1), hidden_, 0);
    }
}

void Forward::upload_step_inputs(int32_t token, const StepValues* values) {
    int32_t in[6] = {token, n_past_, 0, 0, 0, 0};
    if (!values) return be_.upload(in, step_in_.rows_view(0, 2));
    in[2] = values->n_history;
    std::memcpy(&in[4], &values->u, sizeof values->u);
    be_.upload(in, step_in_);
}

// One decode step through the backend's recording (a CUDA graph): the token id and position (and the tail's values)
// go up in one upload, then one launch runs every op, the tail's included. Steps the recording cannot serve (attention
// capture writes host memory per step) and the first step after (in)validation run op by op.
bool Forward::decode_step_recorded(int32_t token, const StepTail* tail, const StepValues& values) {
    if (!record_steps_ || capture_) return false;
    const uint64_t tail_id = tail ? tail->id : 0;
    // A recording serves every position below its key limit; one sized for at least 4x the keys this step needs
    // (after a reset or a long rewind) is recorded again smaller, but not one a bucket or so larger, so that a chat
    // moving back and forth across a bucket's edge does not record at every crossing.
    const int needed = recorded_step_key_limit(n_past_ + 1, cache_.n_ctx());
    const bool fits = needed <= recorded_key_limit_ && static_cast<int64_t>(needed) * 4 > recorded_key_limit_;
    if (tail_id != recorded_tail_ || !fits) {
        drop_step_recording(); // it holds another tail (or none), or attention sized for another context bucket
        recorded_tail_ = tail_id;
        recorded_key_limit_ = needed;
    }
    step_key_limit_ = recorded_key_limit_;
    upload_step_inputs(token, tail ? &values : nullptr);
    auto issue = [&] {
        issue_ops(step_.token, 1, 1, &step_.pos);
        if (tail) tail->issue(hidden_, step_);
    };
    if (!decoded_once_) { // op by op, but already with the device inputs: lazy uploads and allocations happen here
        issue();
        decoded_once_ = true;
        return true;
    }
    if (step_recording_ < 0) {
        try {
            be_.begin_recording();
            issue();
            step_recording_ = be_.end_recording();
        } catch (const Error& e) {
            be_.abort_recording(); // nothing ran: this step goes op by op, and so do the later ones
            record_steps_ = false;
            recording_error_ = e.what();
            issue();
            return true;
        }
    }
    be_.replay(step_recording_);
    ++replayed_steps_;
    return true;
}

const std::vector<float>& Forward::eval(std::span<const int32_t> tokens, bool all_logits) {
    const int rows = all_logits ? static_cast<int>(tokens.size()) : 1;
    run_layers(tokens, rows, nullptr, {});
    if (logits_.rows() < rows) logits_ = be_.alloc(GgmlType::F32, rows, c_.n_vocab);
    const Tensor logits = logits_.rows_view(0, rows);
    be_.linear(w_.output, nullptr, rows == 1 ? hidden_ : xn_.rows_view(0, rows), logits); // issue_ops' normalised rows
    if (c_.final_softcap != 0) be_.softcap(logits, c_.final_softcap);
    host_logits_.resize(static_cast<size_t>(rows) * c_.n_vocab);
    be_.download(logits, host_logits_.data());
    return host_logits_;
}

const Tensor& Forward::eval_hidden(std::span<const int32_t> tokens) {
    run_layers(tokens, 1, nullptr, {});
    return hidden_;
}

void Forward::eval_with_tail(std::span<const int32_t> tokens, const StepTail& tail, const StepValues& values) {
    if (tail.id == 0) throw Error(ErrorKind::invalid_argument, "eval_with_tail: tail id 0 is the plain step's");
    run_layers(tokens, 1, &tail, values);
}

std::vector<float> Forward::final_hidden() const {
    std::vector<float> h(c_.n_embd);
    be_.download(hidden_, h.data());
    return h;
}

} // namespace winnow
