#include "head/output_head.h"

#include "winnow/error.h"

namespace winnow::head {

ExactOutputHead::ExactOutputHead(Backend& be, const Matrix& output, float final_softcap) : be_(be), output_(output), softcap_(final_softcap) {
    require_support(be, Op::linear, output.type);
    require_support(be, Op::top_k, GgmlType::F32);
    if (softcap_ != 0) require_support(be, Op::softcap, GgmlType::F32);
    fused_ = softcap_ == 0 && be.supports(Op::head_top_k, output.type); // the fused op sees raw logits
    logits_ = be.alloc(GgmlType::F32, 1, output.rows);
}

const Tensor& ExactOutputHead::device_logits(const Tensor& hidden) {
    be_.linear(output_, nullptr, hidden, logits_);
    if (softcap_ != 0) be_.softcap(logits_, softcap_);
    return logits_;
}

HeadOutput ExactOutputHead::compute(const Tensor& hidden, const HeadRequest& r) {
    HeadOutput out;
    if (fused_ && !r.full_logits) { // the product, top-k and log Z in one op: no logits written (same ids and bits)
        TopK t = be_.head_top_k(output_, hidden, r.k, r.log_norm);
        out.top = std::move(t.ids);
        out.top_logits = std::move(t.logits);
        out.log_norm = t.log_norm;
        return out;
    }
    device_logits(hidden);
    TopK t = be_.top_k(logits_, r.k, r.log_norm);
    out.top = std::move(t.ids);
    out.top_logits = std::move(t.logits);
    out.log_norm = t.log_norm;
    if (r.full_logits) {
        out.logits.resize(static_cast<size_t>(output_.rows));
        be_.download(logits_, out.logits.data());
    }
    return out;
}

HeadOutput AdaptiveOutputHead::compute(const Tensor& hidden, const HeadRequest& r) {
    if (!can_serve(r)) throw Error(ErrorKind::invalid_argument, "the adaptive head cannot produce full logits");
    hidden_.resize(static_cast<size_t>(hidden.numel()));
    be_.download(hidden, hidden_.data()); // the adaptive head runs on the host
    AdaptiveParams p = params_;
    p.k = r.k;
    AdaptiveResult a = head_.select(hidden_, p);
    HeadOutput out;
    out.top = std::move(a.head.top);
    out.top_logits = std::move(a.head.top_logits);
    out.log_norm = a.head.log_norm;
    out.cost = a.cost;
    return out;
}

} // namespace winnow::head
