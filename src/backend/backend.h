#pragma once
// The op set the decoder runs on, over tensors a backend owns (in the manner of ggml's backend interface). The CPU
// backend is the production reference; a device backend implements the same interface one op at a time and says
// which it has through supports(), so the forward pass can refuse clearly instead of computing something else.
// Every op's semantics are defined by its CPU reference (backend/cpu/reference_ops.h); tests/ops compares each
// backend with that reference in double precision, op by op.
//
// Tensors passed to an op live on the backend's device. Activations are F32, laid out [n_tokens][dim]; the KV cache
// may be F32, F16 or BF16 where the backend supports it. Ops run in stream order; only download() and top_k() wait.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/tensor.h"
#include "model/model_config.h"
#include "model/weights.h"

namespace winnow {

enum class Op { get_rows, linear, linear_parts, linear_add, linear_swiglu, rms_norm, layer_norm, rope, copy_rows, rope_store_kv, attention, gelu_tanh, swiglu, geglu, add, scale, softcap, top_k, sample, head_top_k, summarize_keys };
const char* to_string(Op op);
inline constexpr Op kAllOps[] = {Op::get_rows, Op::linear, Op::linear_parts, Op::linear_add, Op::linear_swiglu, Op::rms_norm,
                                 Op::layer_norm, Op::rope, Op::copy_rows, Op::rope_store_kv, Op::attention, Op::gelu_tanh,
                                 Op::swiglu, Op::geglu, Op::add, Op::scale, Op::softcap, Op::top_k, Op::sample, Op::head_top_k, Op::summarize_keys};

// One output of Backend::linear_parts: y = W x (+ bias).
struct LinearPart {
    Matrix w;
    const Tensor* bias = nullptr;
    Tensor y;
};

// An RMSNorm applied to a fused op's input on the way in (Backend::rms_norm_linear_parts): weight [1][cols], and a
// scratch [n][cols] F32 for the normalised rows where the backend runs the norm as an op of its own.
struct InputRmsNorm {
    const Tensor* weight = nullptr;
    float eps = 0;
    const Tensor* scratch = nullptr;
};

struct RopeParams {
    int n_heads = 0, head_dim = 0, rope_dim = 0; // the first rope_dim dims of each head are rotated
    int pos0 = 0;                                // row t of the input is at position pos0 + t
    float base = 10000.0f;
    RopeStyle style = RopeStyle::none;
    // When set, pos0 is read from this I32 [1][1] tensor on the backend's device when the op runs, not when it is
    // issued: a recorded decode step (Backend::begin_recording) is replayed at a new position this way.
    const Tensor* pos = nullptr;
    // When set, an F32 [1][rope_dim / 2] tensor on the backend's device: pair i's angle is divided by factor i (Llama
    // 3.1's "llama3" rope scaling, GGUF rope_freqs.weight); null: every factor is 1.
    const Tensor* freq_factors = nullptr;
};

// How a block-sparse row's softmax treats the keys its mask drops (SPION spec section 4):
//   standard: renormalise over the kept keys;
//   spion:    dropped keys the row could see (causally) count as logit 0 in the denominator, as the SPION reference
//             kernels do, so the kept probabilities sum to less than 1 (for models trained with that kernel).
enum class SparseDenominator { standard, spion };

// A block-sparse attention pattern for one layer (SPION): a query at position p of KV head group g may attend to key
// position j <= p only when row(p / block, g)[j / block] is set. With groups == 1 every head shares one pattern;
// otherwise groups equals the layer's KV heads and each group of query heads that shares a KV head has its own. The
// diagonal blocks must be kept (every row then has at least its own key), so a masked row is never empty. An absent
// mask (nullptr) is dense causal attention.
struct BlockMask {
    int block = 0;
    int n_blocks = 0;
    std::vector<uint8_t> keep; // [groups][n_blocks][n_blocks], row = query block
    SparseDenominator denominator = SparseDenominator::standard;
    int groups = 1;
    const uint8_t* row(int64_t q_block, int kv_head) const {
        return &keep[(static_cast<size_t>(groups == 1 ? 0 : kv_head) * n_blocks + static_cast<size_t>(q_block)) * n_blocks];
    }
    bool allows(int64_t q_pos, int64_t k_pos, int kv_head = 0) const { return row(q_pos / block, kv_head)[k_pos / block] != 0; }
    void validate() const; // throws winnow::Error for a malformed pattern
    void check_heads(int n_head_kv) const; // throws unless groups is 1 or n_head_kv
};

// Per-block elementwise maxima and minima of a layer's cached keys, for query-aware block selection (below): block b
// covers cache rows [b * block, (b + 1) * block), and selection reads only complete blocks. The block is the selection's
// unit and divides the mask's block (finer units bound scores more tightly). In the backend's memory: host memory for
// the CPU backend, device memory for CUDA (e.g. the raw() of F16 tensors the backend allocated). Stored as fp16
// rounded outward (kmax up, kmin down), so they still bound every key while a decode step reads half the bytes.
struct KeyBlockSummary {
    int block = 0;                   // tokens per summarised block
    // Blocks [0, n_blocks) have summaries (at most the cache's rows / block, rounded up); selection reads only those that
    // are complete and at or before the row's position, whose summaries must then be current (Backend::summarize_keys).
    // n_blocks is also each plane's length below, so it must be the blocks the summary tensors hold (their units, as
    // Forward passes them), not the blocks summarised so far.
    int n_blocks = 0;
    // fp16 [n_head_kv][n_blocks][head_dim]: a plane per KV head, so that one row's bounds for a KV head read its units'
    // summaries as one sequential stream per array (a row per unit, the heads interleaved, made it a strided read: the
    // sparse decode op at 8K on SmolLM2 was ~10% slower; bench/reports/spion-attention-cpu.md, section 11).
    const uint16_t* kmax = nullptr;  // each >= every key it summarises
    const uint16_t* kmin = nullptr;  // same layout, each <= every key
    // The element of KV head kvh's dimension 0 for block b.
    size_t at(int kvh, int b, int head_dim) const { return (static_cast<size_t>(kvh) * n_blocks + b) * head_dim; }
};

struct AttentionParams {
    int pos0 = 0;                    // the first query row is at position pos0; cache rows [0, pos0 + t] are its keys
    const Tensor* pos = nullptr;     // when set, pos0 is read from this device I32 [1][1] when the op runs (RopeParams::pos)
    // With pos: the rows' keys end by key_limit (pos0 + rows <= key_limit <= the cache's rows, whatever pos holds when
    // the op runs), so a device sizes a recorded step's launch for it rather than for the whole cache; 0: the cache.
    // A row past it is an error on the CPU; a device kernel cannot report it, so the caller must keep to it (Forward
    // re-records its step when a position crosses it).
    int key_limit = 0;
    int n_head = 0, n_head_kv = 0, head_dim = 0;
    float scale = 0;                 // multiplies q.k; 0: 1 / sqrt(head_dim)
    // Sliding-window attention (Gemma 3's sliding layers): the row at position p attends to keys p - window < j <= p
    // only, as HF's sliding_window and llama.cpp's n_swa; 0: every earlier key. Not with a mask (SPION patterns are
    // calibrated for full layers).
    int window = 0;
    // Gemma 2's soft cap of the scores: each scaled score s becomes softcap * tanh(s / softcap) before the softmax, as HF's
    // attn_logit_softcapping and llama.cpp's; 0: none. Not with a mask.
    float softcap = 0;
    const BlockMask* mask = nullptr; // null: dense causal
    // Query-aware block selection (winnow's addition to SPION's static pattern, after Quest, Tang et al. 2024): with a
    // mask, each (query row, KV head) also attends to the select_blocks complete, fully causal, summarised blocks
    // (of key_summary.block tokens) that the mask drops and that have the highest score bound
    //   ub(b) = max over the group's query heads h of sum_d max(q_hd * kmax_bd, q_hd * kmin_bd)  >=  max_{j in b} q_h.k_j
    // (ties: the lower block first). A static pattern keeps what text in general attends to; the bound finds the
    // blocks this query needs (a passkey, an earlier mention). key_summary must cover the candidate blocks.
    int select_blocks = 0;
    KeyBlockSummary key_summary;
    // Calibration only (SPION pattern capture): when set, the CPU backend also writes the attention probabilities,
    // averaged over the heads, to capture[t * capture_stride + j] for query row t and key j <= pos0 + t (host memory);
    // with capture_per_group, averaged over the heads of each KV group g, at capture + g * n * capture_stride.
    float* capture = nullptr;
    int64_t capture_stride = 0;
    bool capture_per_group = false;
    int kv_head(int h) const { return h / (n_head / n_head_kv); } // grouped-query mapping
    int first_key(int q_pos) const { return window > 0 && q_pos >= window ? q_pos - window + 1 : 0; } // the row's first key
    float effective_scale() const;
};

// The best k entries of one row of logits, best first (ties: lower id first), and log sum_i exp(logit_i).
struct TopK {
    std::vector<int32_t> ids;
    std::vector<float> logits;
    double log_norm = 0; // only when asked for
};

// The sampler chain (decode/sampler.h) run where the logits are, so that a decode step returns a 4-byte token instead
// of every logit: greedy, or the repetition penalty, temperature, top-k, top-p and min-p in either order and the draw
// from a uniform u the host made (Sampler::next_uniform), the host SamplerChain's choice for the same u. The tensors
// are read when the op runs, so a recorded step can replay it with a new u and history length.
struct SampleParams {
    SamplingParams chain;               // seed unused: the draw's randomness is u
    // I32 [capacity][1]: the tokens so far (prompt + generated), the penalty's window; may be null without a penalty.
    const Tensor* history = nullptr;
    int n_history = 0;                  // how many of them; read from this I32 [1][1] when it is set:
    const Tensor* n_history_at = nullptr;
    // I32 [1][2] holding the 8 bytes of a double u in [0, 1): the draw's uniform. Unused (may be null) when greedy.
    const Tensor* u = nullptr;
    // Also write the chosen token to history[n_history] when the history has room, so that the device's copy of the
    // sequence stays current without an upload per token.
    bool append = false;
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual const char* name() const = 0;
    virtual Device device() const = 0;
    // True when `op` runs with `type`: the weight's stored type for linear, the fused linear ops (linear_parts,
    // linear_add, linear_swiglu: their defaults run linear, so a backend supports them wherever it supports linear),
    // head_top_k and get_rows, the KV cache's for copy_rows, rope_store_kv and attention, F32 for the other ops.
    virtual bool supports(Op op, GgmlType type) const = 0;

    // ---- memory
    // A tensor of the given shape on the backend's device, zero-filled.
    virtual Tensor alloc(GgmlType type, int64_t rows, int64_t cols) = 0;
    // Read-only host data (weights) made available to kernels: the CPU borrows it (the caller keeps it alive, as the
    // model's memory map does), a device backend copies it once.
    virtual Tensor place_readonly(GgmlType type, int64_t rows, int64_t cols, const void* host) = 0;
    virtual void upload(const void* host, const Tensor& dst) = 0;   // dst.bytes() bytes
    virtual void download(const Tensor& src, void* host) = 0;       // src.bytes() bytes; waits for the data
    virtual void synchronize() = 0;

    // ---- ops (tensor arguments are views; outputs are written in place)
    // out[i] = table.row(ids[i]) decoded to F32; ids is I32 [n][1].
    virtual void get_rows(const Matrix& table, const Tensor& ids, const Tensor& out) = 0;
    // y[t][r] = W.row(r) . x[t] (+ bias[r]); x is [n][W.cols], y is [n][W.rows]. F32 accumulation.
    virtual void linear(const Matrix& w, const Tensor* bias, const Tensor& x, const Tensor& y) = 0;
    // parts[i].y = parts[i].w x (+ parts[i].bias) for i < n_parts (a pointer and a count: the CUDA sources are C++17),
    // one input for all, the bits of one linear per part. The decoder's q, k and v projections: a device backend
    // computes up to three parts of one weight type in one launch. The default runs linear per part.
    virtual void linear_parts(const LinearPart* parts, int n_parts, const Tensor& x);
    // y += W x (+ bias): linear, then add into y, with the same bits (each y element gains the value linear would have
    // written, in one rounded addition). The decoder's residual connections: a device backend does it in the GEMV's
    // epilogue, one launch instead of two. The default runs linear into a scratch, then add.
    virtual void linear_add(const Matrix& w, const Tensor* bias, const Tensor& x, const Tensor& y);
    // y = silu(W_gate x) * (W_up x), no biases, both matrices of one type (supports(Op::linear_swiglu, type)): linear
    // into up, linear into gate, then swiglu, with the same bits. A LLaMA FFN's first half: a device backend computes both
    // rows of a decode step in one warp and never writes gate or up. The default runs the three ops.
    virtual void linear_swiglu(const Matrix& w_gate, const Matrix& w_up, const Tensor& x, const Tensor& y);
    // linear_parts and linear_swiglu of the RMSNorm of x (a LLaMA layer's norm before its q/k/v projections and before
    // its FFN): rms_norm(x, *norm.weight, norm.eps, *norm.scratch), then the op on the scratch, with those ops' bits. A
    // device backend normalises inside the GEMV's launch (one launch instead of two) and may leave the scratch unwritten.
    virtual void rms_norm_linear_parts(const Tensor& x, const InputRmsNorm& norm, const LinearPart* parts, int n_parts);
    virtual void rms_norm_linear_swiglu(const Tensor& x, const InputRmsNorm& norm, const Matrix& w_gate, const Matrix& w_up, const Tensor& y);
    virtual void rms_norm(const Tensor& x, const Tensor& w, float eps, const Tensor& y) = 0;
    virtual void layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps, const Tensor& y) = 0;
    // Rotates x [n][n_heads * head_dim] in place (positions pos0 + t).
    virtual void rope(const Tensor& x, const RopeParams& p) = 0;
    // dst rows [dst_row, dst_row + src.rows) = src, converted to dst's type (the KV cache write).
    virtual void copy_rows(const Tensor& src, const Tensor& dst, int64_t dst_row) = 0;
    // The same with dst_row read from the device I32 [1][1] tensor `row` when the op runs (a recorded decode step's
    // cache write). The default reads the row back to the host first, which waits for the stream; a device backend
    // that records steps overrides it.
    virtual void copy_rows_at(const Tensor& src, const Tensor& dst, const Tensor& row);
    // An attention layer's position step in one op: rope(q, p), rope(k, p with n_head_kv heads), then the rotated k
    // and v into rows [dst_row, dst_row + n) of k_cache and v_cache (copy_rows, or copy_rows_at with row_at), with the
    // bits of those four ops; q and k are left rotated in place, as rope leaves them. q is [n][p.n_heads * head_dim],
    // k and v [n][n_head_kv * head_dim]. With row_at the row is read from that device I32 [1][1] when the op runs (a
    // recorded step; p.pos likewise). Forward issues it once per layer, and a device backend runs it as one launch
    // instead of four (launches dominate a batch-1 decode step). The default runs the four ops, so a backend supports
    // it (for the cache's type) wherever it supports rope and copy_rows.
    virtual void rope_store_kv(const Tensor& q, const Tensor& k, const Tensor& v, const RopeParams& p, int n_head_kv, const Tensor& k_cache,
                               const Tensor& v_cache, int64_t dst_row, const Tensor* row_at = nullptr);
    // A LLaMA layer's whole position step before attention: rms_norm_linear_parts(x, norm, qkv, 3) (q, k, v: the outputs
    // qkv[i].y), then rope_store_kv(qkv[0].y, qkv[1].y, qkv[2].y, p, n_head_kv, k_cache, v_cache, dst_row, row_at), with
    // those two ops' bits. A device backend runs a decode step's as one launch (each warp projects one output, or both
    // dims of a rotated pair and rotates them) instead of two; the default runs the two ops.
    virtual void rms_norm_qkv_rope_store_kv(const Tensor& x, const InputRmsNorm& norm, const LinearPart* qkv, const RopeParams& p, int n_head_kv,
                                            const Tensor& k_cache, const Tensor& v_cache, int64_t dst_row, const Tensor* row_at = nullptr);
    // Causal (optionally block-masked) attention of q [n][n_head * head_dim] over the cache rows [0, pos0 + n);
    // caches are [n_ctx][n_head_kv * head_dim]; out is [n][n_head * head_dim].
    virtual void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& out, const AttentionParams& p) = 0;
    virtual void gelu_tanh(const Tensor& x) = 0;                                      // in place
    virtual void swiglu(const Tensor& gate, const Tensor& up, const Tensor& out) = 0; // out = silu(gate) * up
    virtual void geglu(const Tensor& gate, const Tensor& up, const Tensor& out) = 0;  // out = gelu_tanh(gate) * up (Gemma)
    // y += x; x has y's shape, or one row that is added to every row of y.
    virtual void add(const Tensor& y, const Tensor& x) = 0;
    virtual void scale(const Tensor& x, float s) = 0; // x *= s, in place (Gemma's embedding rows times sqrt(n_embd))
    virtual void softcap(const Tensor& x, float cap) = 0; // x = cap * tanh(x / cap), in place (Gemma 2's logits); cap > 0
    // The best k of the single row `logits`, returned to the host (k small); log_norm when want_log_norm.
    virtual TopK top_k(const Tensor& logits, int k, bool want_log_norm) = 0;
    // The next token from the single row `logits` (F32, left unchanged) into `token` (I32 [1][1] on the device), by
    // the chain in p (SampleParams above). Does not wait. The default refuses (supports(Op::sample, F32) is false).
    virtual void sample(const Tensor& logits, const SampleParams& p, const Tensor& token);
    // The exact output head in one op: top_k(W hidden, k, want_log_norm) for one row `hidden` [1][W.cols], the same
    // ids, logits and log-normalizer as linear + top_k on this backend, without the [1][W.rows] logits in memory the
    // caller sees (a device backend never writes them to global memory). supports(Op::head_top_k, W.type). Waits,
    // like top_k. The default runs linear into a scratch row, then top_k.
    virtual TopK head_top_k(const Matrix& w, const Tensor& hidden, int k, bool want_log_norm);

    // Query-aware selection's key summaries (KeyBlockSummary) brought up to date after a cache write: for every unit of
    // `unit` rows that holds one of the rows [row0, row0 + n_rows), units u of kmax and kmin become the elementwise max and
    // min of k_cache rows [u * unit, min((u + 1) * unit, row0 + n_rows)), rounded outward to fp16 (sparse::
    // summarize_rows). Later rows are not read, so a rewound context never keeps stale keys; a unit not yet complete holds
    // its written rows' extremes until its last row comes (selection reads complete units only). kmax, kmin: F16
    // [n_head_kv][units * head_dim] with units = ceil(k_cache.rows / unit), KeyBlockSummary's layout (a row per KV head,
    // n_head_kv dividing k_cache.cols; the head count is an argument so that a tensor of another layout is refused, not
    // taken for a plane per head). With row_at, row0 is read from that device I32 [1][1] when the op runs (a recorded
    // step). supports(Op::summarize_keys, k_cache.type).
    virtual void summarize_keys(const Tensor& k_cache, const Tensor& kmax, const Tensor& kmin, int n_head_kv, int unit, int64_t row0, int n_rows,
                                const Tensor* row_at = nullptr) = 0;

    // ---- recording (CUDA graphs): a decode step's ~10 ops per layer recorded once and replayed with one launch.
    // Between begin_recording() and end_recording() ops are recorded, not run; they must not allocate, upload,
    // download or synchronize, and positions must come from device tensors (RopeParams::pos, AttentionParams::pos,
    // copy_rows_at) so that a replay can run at any position. end_recording() returns a handle for replay(); an
    // error inside a recording ends it (abort_recording) and nothing has run. Backends that cannot record say so.
    virtual bool can_record() const { return false; }
    virtual void begin_recording();
    virtual int end_recording();
    virtual void abort_recording() {}
    virtual void replay(int recording);
    virtual void drop_recording(int /*recording*/) {}

protected:
    // The unfused sequences the fused linear ops are defined by, written once: the public defaults run them, and a
    // device backend runs them where it has no fused kernel (CUDA's prefill). linear_add's product and linear_swiglu's
    // gate go into one scratch the base keeps between calls, grown when too small and never shrunk, so the calls of a
    // forward pass allocate nothing after the first ones. Not for a recorded step (begin_recording): growing the scratch
    // allocates, and a later growth frees the memory a recording would keep reading.
    void unfused_linear_parts(const LinearPart* parts, int n_parts, const Tensor& x); // linear per part
    void unfused_linear_add(const Matrix& w, const Tensor* bias, const Tensor& x, const Tensor& y); // linear, then add
    void unfused_linear_swiglu(const Matrix& w_gate, const Matrix& w_up, const Tensor& x, const Tensor& y); // up, gate, swiglu

private:
    Tensor fused_scratch_; // F32 [1][capacity]: the unfused sequences' intermediate, viewed as [rows][cols]
    Tensor fused_scratch(int64_t rows, int64_t cols);
};

// The position an op runs at: *pos read from the tensor (host memory: a CPU tensor) or pos0.
int resolve_position(const Tensor* pos, int pos0);

// CpuDotMode: winnow/params.h (public).

// n_threads <= 0: one per available core.
std::unique_ptr<Backend> make_cpu_backend(int n_threads = 0, CpuDotMode mode = CpuDotMode::f32);

// Where the decoder runs, for the CLI and the API: `--device cpu|cuda|cuda:N`.
struct BackendOptions {
    Device device = Device::cpu;
    int cuda_device = 0;               // which GPU
    int threads = 0;                   // CPU: 0 = every core
    CpuDotMode dot = CpuDotMode::f32;  // CPU only
};
// Parses "cpu", "cuda" or "cuda:N" into options.device / cuda_device; throws winnow::Error otherwise.
void parse_device(const std::string& s, BackendOptions& options);
// The CPU backend, or the CUDA backend; for cuda a one-line winnow::Error when winnow was built without CUDA or no
// GPU is present.
std::unique_ptr<Backend> make_backend(const BackendOptions& options);

// The checks every backend's sample op makes (shapes, types, devices; history and u present when the chain reads
// them); throws winnow::Error(invalid_argument). Returns the vocabulary size.
int64_t check_sample_args(const Tensor& logits, const SampleParams& p, const Tensor& token, Device device);

// The checks every backend's attention makes of query-aware selection (AttentionParams::select_blocks >= 0; when > 0,
// a mask, a selection unit that divides its block, and key summaries that fit a cache of cache_rows and are there);
// throws winnow::Error(invalid_argument).
void check_block_selection(const AttentionParams& p, int64_t cache_rows); // and the window and the soft cap
// Backend::softcap's cap: a finite number > 0, else winnow::Error(invalid_argument).
void check_softcap(float cap);
// RopeParams::freq_factors, when set: F32, one factor per rotated pair. Returns them (host or device memory), or null.
const float* checked_rope_factors(const RopeParams& p);
// The end of the keys any of n_rows query rows may read: pos0 + n_rows for a host position; with a device position,
// key_limit (checked against the cache's rows), or the whole cache when it is 0.
int64_t attention_key_end(const AttentionParams& p, int n_rows, int64_t cache_rows);

// The check every backend's rms_norm_linear_* makes: the norm has its weight and scratch; throws winnow::Error
// (invalid_argument) naming `op`.
void check_input_norm(const InputRmsNorm& norm, const char* op);

// The checks every backend's summarize_keys makes (types, shapes, rows, device); throws winnow::Error(invalid_argument).
void check_summarize_keys_args(const Tensor& k_cache, const Tensor& kmax, const Tensor& kmin, int n_head_kv, int unit, int64_t row0, int n_rows,
                               Device device);

// The checks every backend's head_top_k makes: hidden is one F32 row of W.cols on `device`, 1 <= k <= W.rows, W has
// rows and fits the int32 ids; throws winnow::Error(invalid_argument).
void check_head_top_k_args(const Matrix& w, const Tensor& hidden, int k, Device device);

// The check every backend's linear_swiglu makes: the gate and up matrices share type and shape; throws
// winnow::Error(invalid_argument).
void check_linear_swiglu_args(const Matrix& w_gate, const Matrix& w_up);

// Throws winnow::Error(unsupported) naming the backend, op and type when the backend lacks it.
void require_support(const Backend& be, Op op, GgmlType type);

} // namespace winnow
