#pragma once
// The output head as a pipeline stage: the final-norm hidden state in (a tensor on the backend's device), what the
// sampler needs out: the best k ids with their logits, the log-normalizer when asked, and the full logits only when
// the sampler declares it needs them (penalties, top-p, min-p, sampling over the whole vocabulary). Two heads:
//   ExactOutputHead    — every logit (the backend's linear over the placed head matrix) and the backend's top_k, or
//                        the fused head_top_k where the backend has it (no logits written), so on a device only k
//                        values come back unless the logits are asked for;
//   AdaptiveOutputHead — AdaptiveSoftmax (head/adaptive_head.h): the (eps, delta)-PAC top-k and probability from a
//                        fraction of the products; it cannot produce full logits.
#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "head/adaptive_algorithm.h"
#include "head/adaptive_head.h"

namespace winnow::head {

struct HeadRequest {
    int k = 1;                // best candidates wanted, best first
    bool full_logits = false; // every logit, on the host
    bool log_norm = false;    // log sum exp of the logits
};

struct HeadOutput {
    std::vector<int32_t> top;
    std::vector<float> top_logits;
    double log_norm = 0;        // when requested (the adaptive head always gives its estimate)
    std::vector<float> logits;  // when full_logits was requested
    AdaptiveCost cost;          // adaptive head only
};

class OutputHead {
public:
    virtual ~OutputHead() = default;
    virtual const char* name() const = 0;
    virtual bool can_serve(const HeadRequest& r) const = 0;
    // hidden: [1][n_embd] F32 on the backend's device. Throws winnow::Error when !can_serve(r).
    virtual HeadOutput compute(const Tensor& hidden, const HeadRequest& r) = 0;
};

class ExactOutputHead final : public OutputHead {
public:
    // `output`: the head matrix as placed for `be` (DeviceWeights::output); final_softcap: Gemma 2's cap of the logits
    // (ModelConfig::final_softcap; 0: none), applied to the logits before top-k, log Z and the sample op.
    ExactOutputHead(Backend& be, const Matrix& output, float final_softcap = 0);
    const char* name() const override { return "exact"; }
    bool can_serve(const HeadRequest&) const override { return true; }
    HeadOutput compute(const Tensor& hidden, const HeadRequest& r) override;
    // Every logit, left on the backend's device ([1][n_vocab] F32, valid until the next call): for a backend op that
    // reads them in place (Backend::sample) instead of the top-k and the download of compute().
    const Tensor& device_logits(const Tensor& hidden);

private:
    Backend& be_;
    Matrix output_;
    float softcap_ = 0;
    bool fused_ = false; // the backend has Op::head_top_k for this matrix (and no cap): compute() uses it unless full logits are asked for
    Tensor logits_;
};

class AdaptiveOutputHead final : public OutputHead {
public:
    AdaptiveOutputHead(Backend& be, AdaptiveHead& head) : be_(be), head_(head) {}
    const char* name() const override { return "adaptive"; }
    bool can_serve(const HeadRequest& r) const override { return !r.full_logits; }
    HeadOutput compute(const Tensor& hidden, const HeadRequest& r) override;
    // delta, epsilon, calibrated fudge factors, seed; k comes from each request.
    void set_params(const AdaptiveParams& p) { params_ = p; }

private:
    Backend& be_;
    AdaptiveHead& head_;
    AdaptiveParams params_;
    std::vector<float> hidden_;
};

} // namespace winnow::head
