#pragma once
// What the forward keeps for the backward (../shared/specs/memory-lean.md). Every choice is exact unless marked:
//   attention  dense:  the probabilities P, B*NH*T*T values (the baseline)
//              lse:    one log-sum-exp per row; the backward recomputes P exactly from the kept q and k
//                      (FlashAttention-style, O(T) per token)
//              approx: softmax output approximation (Lee & Lee, NeurIPS 2023), APPROXIMATE: per row the m largest and
//                      m smallest probabilities, one decay rate and the rank of every entry; the backward rebuilds P^
//                      (used for dS and for dV)
//   linear     full:   every linear layer keeps its input
//              asa1..asa4: auxiliary sign activation (Woo & Jeon, ICLR 2023), APPROXIMATE weight gradients: the
//                      chosen linears keep 1 bit (the sign) of their input, compute y = W (x + eps sign(x)) + b, and
//                      take dW = lr_expansion * eps * dy^T sign(x); asa1 = ffn_down, asa2 = + ffn_up (and gate),
//                      asa3 = + attn_output, asa4 = + q, k, v
//   recompute  off | on: norms and the GELU / SwiGLU output are recomputed in the backward from the kept residual,
//                      row statistics and pre-activations (llm.c's recompute = 2)
//   checkpoint off | on: per-layer checkpointing (Chen et al. 2016): only each layer's input is kept; the backward
//                      reruns the layer's forward (under the other choices) just before its backward — exact, about
//                      one more forward pass of the layers; memory = the inputs + one live layer
#include <string>

namespace winnow::train {

enum class AttentionPolicy { dense, lse, approx };
enum class LinearPolicy { full, asa1, asa2, asa3, asa4 };

struct MemoryPolicy {
    AttentionPolicy attention = AttentionPolicy::dense;
    int approx_m = 5;               // approx: probabilities kept at each end of a sorted row
    LinearPolicy linear = LinearPolicy::full;
    float asa_eps = 0.01f;          // ASA: the auxiliary activation's scale
    float asa_lr_expansion = 100.f; // ASA: multiplies the weight gradient (the authors' lr expansion)
    bool recompute = false;
    bool checkpoint = false;

    // "attention=dense,linear=full,recompute=off"; parse accepts any subset of comma-separated key=value pairs,
    // plus m=5 (throws winnow::Error on anything else).
    std::string describe() const;
    static MemoryPolicy parse(const std::string& spec);
    bool approximate() const { return attention == AttentionPolicy::approx || linear != LinearPolicy::full; }
};

} // namespace winnow::train
