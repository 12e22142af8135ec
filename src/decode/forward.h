#pragma once
// The transformer forward pass (gpt2 and llama) over a KV cache: prefill a batch of tokens, or decode one. Every
// step is a backend op on backend-owned tensors (weights, cache and scratch activations), so the same code drives
// the CPU and a device; only the token ids go in and, when asked for, the logits or hidden state come out.
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/device_weights.h"
#include "decode/kv_cache.h"
#include "model/model.h"
#include "sparse/key_summary.h"
#include "winnow/error.h"

namespace winnow {

// The key limit of a recorded decode step whose row needs `keys` keys (its position + 1): the smallest power of two
// >= keys and >= kMinStepKeys, at most n_ctx. A recording serves every position below its limit, so a generation
// records again at 512, 1024, 2048, ... keys rather than sizing every step's attention for the whole context (at
// n_ctx 8192 a short chat would otherwise launch 32 flash-decoding splits per head, nearly all empty).
constexpr int kMinStepKeys = 512;
int recorded_step_key_limit(int keys, int n_ctx);

class Forward {
public:
    // n_ctx <= 0: the model's training context. Throws winnow::Error(unsupported) when the backend lacks an op the
    // model needs (naming the op and type).
    Forward(const LoadedModel& model, Backend& backend, int n_ctx = 0, GgmlType cache_type = GgmlType::F32);
    ~Forward();
    Forward(const Forward&) = delete;
    Forward& operator=(const Forward&) = delete;

    // Appends `tokens` at positions n_past().. and returns next-token logits on the host: one row of n_vocab per token
    // when all_logits, else only the last token's row. Throws winnow::Error for out-of-range ids or a full context.
    const std::vector<float>& eval(std::span<const int32_t> tokens, bool all_logits = false);
    // Like eval, but stops at the final norm: returns the last token's hidden state [1][n_embd] on the backend's
    // device, the input of an output head (head/output_head.h).
    const Tensor& eval_hidden(std::span<const int32_t> tokens);

    // ---- a step that ends in ops of the caller's (the head product and the sample op: decode/generator.h)
    // The step's inputs on the device: views of one I32 [6][1] block that goes up in one upload per step: the token id,
    // its position, the history length (SampleParams::n_history_at), a pad word, and u (a double's bytes, 8-byte
    // aligned: SampleParams::u).
    struct StepInputs {
        Tensor token, pos, n_history, u;
    };
    // What the tail reads besides the token and position.
    struct StepValues {
        int32_t n_history = 0;
        double u = 0;
    };
    // Ops issued after the final norm, reading the hidden state [1][n_embd] and the step's inputs from the device. A
    // decode step records them with the layers, so `issue` must only issue ops, and whatever it bakes in (tensors,
    // chain parameters) must stay as it was while its id is the same: another id drops the recording (ids other than
    // 0; 0 is the plain step's).
    struct StepTail {
        std::function<void(const Tensor& hidden, const StepInputs& in)> issue;
        uint64_t id = 1;
    };
    // Runs `tokens` like eval_hidden, then the tail, with `values` in the step's inputs. A one-token step on a backend
    // that records is one upload of the step's inputs and one replay of the layers and the tail together; a prefill,
    // or a step the recording cannot serve, issues the same ops one by one.
    void eval_with_tail(std::span<const int32_t> tokens, const StepTail& tail, const StepValues& values);
    // The latest final-norm hidden state, copied to the host.
    std::vector<float> final_hidden() const;

    // Calibration: after each layer's attention, on_layer(layer, group, P, n, stride) receives the head-mean attention
    // probabilities of the n tokens just evaluated (row t: keys 0..n_past+t, at P + t * stride): group 0 only, the mean
    // over all heads; with per_group, one call per KV head group, the mean over that group's heads. CPU backend only;
    // an empty function turns the capture off.
    using AttentionCapture = std::function<void(int layer, int group, const float* P, int n, int64_t stride)>;
    void set_attention_capture(AttentionCapture on_layer, bool per_group = false);

    // Block-sparse attention per layer (SPION); an entry may be null (dense); an empty list restores dense attention.
    // The masks must outlive their use and cover the context.
    void set_attention_masks(std::vector<const BlockMask*> per_layer);
    // The same for one mask per layer (the vector must outlive the masks' use).
    void set_attention_masks(const std::vector<BlockMask>& per_layer);
    // Query-aware block selection on top of the masks (AttentionParams::select_blocks): each masked row also reads the
    // blocks_per_row dropped blocks of block_size tokens (0: sparse::selection_unit's default; it must divide the mask's block) whose keys bound its
    // scores highest. blocks_per_row 0 turns it off. The key summaries live on the backend (Backend::summarize_keys after
    // each cache write), so selection runs on any backend that has the op and a recorded step can replay it.
    void set_block_selection(int blocks_per_row, int block_size = 0);
    int block_selection() const { return select_blocks_; }

    // Decode steps (one token) as one recorded launch on a backend that can record (CUDA graphs): on by default there,
    // off with set_step_recording(false) or WINNOW_CUDA_GRAPHS=0 in the environment. The first decode step runs op by
    // op (it uploads what is lazily uploaded, e.g. block masks, and allocates what ops allocate on first use, e.g. the
    // sample op's scratch); the second records the step with the position read from device memory, and every later
    // one replays it. One recording is held: a step with another tail (or none), or past the recording's key limit
    // (recorded_step_key_limit: the context bucket its attention launches are sized for), or needing 4x fewer keys than
    // it, drops it and records again.
    // A recording that fails falls back to op by op for good.
    void set_step_recording(bool on);
    bool step_recording() const { return record_steps_; }
    // How many decode steps ran as a replay (for tests and --stats).
    int64_t replayed_steps() const { return replayed_steps_; }
    // Why recording was given up ("" while it has not been).
    const std::string& step_recording_error() const { return recording_error_; }

    int n_past() const { return n_past_; }
    int n_ctx() const { return cache_.n_ctx(); }
    void reset() { n_past_ = 0; }
    // Keeps the first n cached tokens and forgets the rest: the next eval writes from position n (a chat turn that
    // shares a prefix with the cache prefills only what follows it). Key summaries for block selection are rebuilt from
    // the rewritten rows (Backend::summarize_keys reads no row after the last written one).
    void rewind(int n) {
        if (n < 0 || n > n_past_) throw Error(ErrorKind::invalid_argument, "rewind to " + std::to_string(n) + " of " + std::to_string(n_past_) + " cached tokens");
        n_past_ = n;
    }
    Backend& backend() const { return be_; }
    const DeviceWeights& weights() const { return w_; }
    const ModelConfig& config() const { return c_; }

private:
    void ensure_scratch(int n_tokens);
    void check_support() const;
    // The layers over `tokens` (and the tail, when given, reading `values`), then n_past_ moves on.
    void run_layers(std::span<const int32_t> tokens, int head_rows, const StepTail* tail, const StepValues& values);
    // The ops of a forward pass over n tokens whose ids are in `ids` (device); pos: the device position tensor of a
    // recorded step, or null for the host position n_past_.
    void issue_ops(const Tensor& ids, int n, int head_rows, const Tensor* pos);
    // One decode step through the recording (with the tail when given); false: not recordable here, run it op by op.
    bool decode_step_recorded(int32_t token, const StepTail* tail, const StepValues& values);
    // Uploads the token and position, and with a tail its values too: one upload.
    void upload_step_inputs(int32_t token, const StepValues* values);
    void drop_step_recording();
    void attention_block(const DeviceLayerWeights& l, int layer, int n, const Tensor* pos);
    // Brings layer's key summaries up to date after its cache write of n rows (pos: a recorded step's device position)
    // and returns them for the attention op; allocates them (and summarises the whole context) on first use.
    KeyBlockSummary update_key_summary(int layer, int unit, int n, const Tensor* pos);
    void ffn_block(const DeviceLayerWeights& l, int n);
    // Whether a layer's FFN runs linear_swiglu (a LLaMA layer without an up bias, gate and up of one weight type), or
    // the unfused ops it cannot take.
    bool fused_swiglu(const DeviceLayerWeights& l) const;
    bool head_norms() const; // qwen3's q/k head RMSNorms: the layers need qn_ and kn_
    bool post_norms() const; // gemma3's norms of each block's output: the layers need post_
    // the block's output y (in xn_), normalised by post_norm when there is one, added to the residual x
    void add_block_output(const Tensor& post_norm, const Tensor& y, const Tensor& x, int n);
    void norm(const Tensor& w, const Tensor& b, const Tensor& x, const Tensor& y);

    const ModelConfig& c_;
    Backend& be_;
    DeviceWeights w_;
    KvCache cache_;
    std::vector<const BlockMask*> masks_;
    int select_blocks_ = 0, select_block_size_ = 0;
    // Per layer, with select_blocks_: F16 [n_head_kv][ceil(n_ctx / unit) * head_dim] on the backend (a plane per KV head,
    // KeyBlockSummary's layout); unit 0 until first used.
    struct LayerKeySummary {
        int unit = 0;
        Tensor kmax, kmin;
    };
    std::vector<LayerKeySummary> key_summaries_;
    AttentionCapture capture_;
    bool capture_per_group_ = false;
    int capture_groups() const { return capture_per_group_ ? c_.n_head_kv : 1; }
    std::vector<float> capture_buf_;
    int n_past_ = 0;
    int scratch_tokens_ = 0;
    bool record_steps_ = false;
    bool decoded_once_ = false;    // a decode step ran op by op since the recording was (in)validated
    int step_recording_ = -1;      // the backend's handle, or -1
    uint64_t recorded_tail_ = 0;   // the id of the tail the recording holds (0: none)
    int recorded_key_limit_ = 0;   // the key limit the recording's attention is sized for (0: none)
    int step_key_limit_ = 0;       // AttentionParams::key_limit of the ops issued with the device position
    int64_t replayed_steps_ = 0;
    std::string recording_error_;
    Tensor step_in_;               // I32 [6][1]: the decode step's inputs (StepInputs: token id, position, history length, pad, u)
    StepInputs step_;              // views of step_in_
    // scratch activations, [capacity][dim] (proj_: one row); ops work on row views of the first n rows
    Tensor ids_, x_, xn_, q_, k_, v_, att_, proj_, gate_, up_, logits_, hidden_;
    Tensor qn_, kn_; // the normalised q and k heads (qwen3, gemma3), else empty
    Tensor post_;    // gemma3: a block's output normalised before the residual add, else empty
    std::vector<float> host_logits_;
};

} // namespace winnow
