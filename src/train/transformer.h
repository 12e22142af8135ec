#pragma once
// A trainable GPT-2 / LLaMA transformer on the CPU: fp32 master weights (or double, for the gradient checks) in one
// flat buffer, the forward pass with every activation the backward needs, and the backward pass of every op.
// The architecture and numerics follow the decoder (src/decode/forward.cpp), so a model loaded here computes the
// logits the decoder computes.
#include <cstdint>
#include <cstddef>
#include <string>
#include <vector>

#include "model/model.h"
#include "train/memory_policy.h"
#include "train/softmax_approx.h"

namespace winnow::train {

// One parameter tensor: a named view of the flat buffer.
struct ParamTensor {
    std::string name;
    size_t offset = 0, size = 0;
    int rows = 1, cols = 0;
    bool decay = false; // weight decay applies to matrices, not to norms, biases or position tables
};

struct TrainShape {
    Arch arch = Arch::gpt2;
    int n_vocab = 0, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0, n_ctx = 0;
    float norm_eps = 1e-5f;
    RopeStyle rope = RopeStyle::none;
    int rope_dim = 0;
    float rope_base = 10000.0f;
    bool tied_head = true;
    static TrainShape from(const ModelConfig& c);
};

template <typename F>
class Transformer {
public:
    // Parameters start at zero: fill them with init_random() or load().
    explicit Transformer(const TrainShape& shape, const MemoryPolicy& policy = {});
    // The model's weights, dequantized (shapes must match `shape`).
    void load(const LoadedModel& model);
    // GPT-2-style initialisation: N(0, 0.02) matrices (residual projections scaled by 1/sqrt(2 L)), unit norms.
    void init_random(uint64_t seed);

    // Mean cross-entropy over the targets >= 0 of B sequences of T tokens (tokens, targets: [B][T]). With
    // `backward`, the gradient of that mean is ADDED to grads() (call zero_grad() first).
    double step(const int32_t* tokens, const int32_t* targets, int B, int T, bool backward);
    // Logits of every position of one sequence (the inference check), [T][n_vocab].
    std::vector<F> logits(const int32_t* tokens, int T);

    void zero_grad();
    std::vector<F>& params() { return params_; }
    const std::vector<F>& params() const { return params_; }
    std::vector<F>& grads() { return grads_; }
    const std::vector<ParamTensor>& tensors() const { return tensors_; }
    const ParamTensor& tensor(const std::string& name) const; // throws winnow::Error if absent
    const TrainShape& shape() const { return s_; }
    const MemoryPolicy& policy() const { return policy_; }
    // What the forward keeps for the backward, as allocated for the last B x T: per layer by tensor name (every
    // layer keeps the same), and outside the layers (final norm input and statistics).
    struct SavedTensor { std::string name; size_t bytes; };
    const std::vector<SavedTensor>& saved_per_layer() const { return saved_layer_; }
    size_t saved_bytes_per_layer() const;
    size_t saved_bytes_other() const { return saved_other_bytes_; }
    // Per-layer checkpointing: the tensors of the one layer being recomputed (0 otherwise).
    size_t live_layer_bytes() const { return live_layer_bytes_; }
    // Allocates what the forward keeps for B x T without running it (for memory accounting).
    void reserve(int B, int T) { ensure_acts(B, T); }

private:
    static constexpr size_t kNone = SIZE_MAX;
    struct Layer { // offsets of one layer's tensors in the flat buffer (kNone: absent)
        size_t attn_norm = kNone, attn_norm_b = kNone, wq = kNone, wk = kNone, wv = kNone, wo = kNone, bq = kNone, bk = kNone, bv = kNone, bo = kNone;
        size_t ffn_norm = kNone, ffn_norm_b = kNone, w_gate = kNone, w_up = kNone, w_down = kNone, b_up = kNone, b_down = kNone;
    };
    // What the forward keeps for the backward (the dense policy: every tensor the backward reads, as llm.c's CPU
    // trainer keeps them minus its dead storage: no pre-softmax scores, no projection outputs).
    // Tensors a policy does not keep stay empty; sign bits are packed 64 to a word.
    struct Acts {
        std::vector<F> resid_in, ln1, ln1_mean, ln1_rstd, q, k, v, P, lse, atty, resid_mid, ln2, ln2_mean, ln2_rstd, ff_pre, ff_gate, ff_act;
        std::vector<uint64_t> ln1_sign, atty_sign, ln2_sign, ff_act_sign;
        SoftmaxApproxStore approx;
    };
    void ensure_acts(int B, int T);
    size_t add(const std::string& name, int rows, int cols, bool decay);
    F* p(size_t off) { return params_.data() + off; }
    F* g(size_t off) { return grads_.data() + off; }
    void forward(const int32_t* tokens, int B, int T);
    // One layer: x (its input) becomes its output; a receives what the backward needs under the policy.
    void layer_forward(int l, Acts& a, std::vector<F>& x, int B, int T);
    Acts& live(int l) { return policy_.checkpoint ? acts_[0] : acts_[static_cast<size_t>(l)]; }

    TrainShape s_;
    MemoryPolicy policy_;
    std::vector<ParamTensor> tensors_;
    std::vector<F> params_, grads_;
    size_t tok_embd_ = 0, pos_embd_ = SIZE_MAX, out_norm_ = 0, out_norm_b_ = SIZE_MAX, output_ = 0;
    std::vector<Layer> layers_;
    std::vector<Acts> acts_;
    std::vector<std::vector<F>> layer_inputs_; // per-layer checkpointing
    std::vector<F> resid_final_, lnf_, lnf_mean_, lnf_rstd_;
    int B_ = 0, T_ = 0;
    std::vector<SavedTensor> saved_layer_;
    size_t saved_other_bytes_ = 0, live_layer_bytes_ = 0;
};

extern template class Transformer<float>;
extern template class Transformer<double>;

} // namespace winnow::train
