#pragma once
// The base of the tests' instrumented backends (one missing an op, one logging or counting what the decoder issues):
// every op forwarded to a CPU backend, each call reported to on_op(name) first. The fused ops (linear_parts, linear_add,
// linear_swiglu, rms_norm_linear_*, rope_store_kv, rms_norm_qkv_rope_store_kv, copy_rows_at) are either forwarded whole (forward_fused: the CPU
// backend runs them, and each counts as one op, as one launch on a device) or left to Backend's defaults, which then run
// through this object's own ops (so a test sees, or refuses, the ops a default is made of).
#include <memory>
#include <string>

#include "backend/backend.h"

namespace winnow::test {

class ForwardingCpu : public Backend {
public:
    explicit ForwardingCpu(bool forward_fused) : cpu_(make_cpu_backend(1)), forward_fused_(forward_fused) {}
    const char* name() const override { return "cpu-forwarding"; }
    Device device() const override { return Device::cpu; }
    bool supports(Op op, GgmlType type) const override { return cpu_->supports(op, type); }
    Tensor alloc(GgmlType t, int64_t r, int64_t c) override { return cpu_->alloc(t, r, c); }
    Tensor place_readonly(GgmlType t, int64_t r, int64_t c, const void* h) override { return cpu_->place_readonly(t, r, c, h); }
    void upload(const void* h, const Tensor& d) override { cpu_->upload(h, d); }
    void download(const Tensor& s, void* h) override { cpu_->download(s, h); }
    void synchronize() override {}

    void get_rows(const Matrix& t, const Tensor& i, const Tensor& o) override { on_op("get_rows"), cpu_->get_rows(t, i, o); }
    void linear(const Matrix& w, const Tensor* b, const Tensor& x, const Tensor& y) override { on_op("linear"), cpu_->linear(w, b, x, y); }
    void rms_norm(const Tensor& x, const Tensor& w, float e, const Tensor& y) override { on_op("rms_norm"), cpu_->rms_norm(x, w, e, y); }
    void layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float e, const Tensor& y) override { on_op("layer_norm"), cpu_->layer_norm(x, w, b, e, y); }
    void rope(const Tensor& x, const RopeParams& p) override { on_op("rope"), cpu_->rope(x, p); }
    void copy_rows(const Tensor& s, const Tensor& d, int64_t r) override { on_op("copy_rows"), cpu_->copy_rows(s, d, r); }
    void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const AttentionParams& p) override {
        on_op("attention"), cpu_->attention(q, k, v, o, p);
    }
    void gelu_tanh(const Tensor& x) override { on_op("gelu_tanh"), cpu_->gelu_tanh(x); }
    void swiglu(const Tensor& g, const Tensor& u, const Tensor& o) override { on_op("swiglu"), cpu_->swiglu(g, u, o); }
    void geglu(const Tensor& g, const Tensor& u, const Tensor& o) override { on_op("geglu"), cpu_->geglu(g, u, o); }
    void scale(const Tensor& x, float s) override { on_op("scale"), cpu_->scale(x, s); }
    void softcap(const Tensor& x, float cap) override { on_op("softcap"), cpu_->softcap(x, cap); }
    void add(const Tensor& y, const Tensor& x) override { on_op("add"), cpu_->add(y, x); }
    TopK top_k(const Tensor& l, int k, bool n) override { return on_op("top_k"), cpu_->top_k(l, k, n); }
    void summarize_keys(const Tensor& k, const Tensor& hi, const Tensor& lo, int heads, int u, int64_t r, int n, const Tensor* at) override {
        on_op("summarize_keys"), cpu_->summarize_keys(k, hi, lo, heads, u, r, n, at);
    }

    // the fused ops: whole, or Backend's default over the ops above
    void linear_parts(const LinearPart* p, int n, const Tensor& x) override {
        if (!forward_fused_) return Backend::linear_parts(p, n, x);
        on_op("linear_parts"), cpu_->linear_parts(p, n, x);
    }
    void linear_add(const Matrix& w, const Tensor* b, const Tensor& x, const Tensor& y) override {
        if (!forward_fused_) return Backend::linear_add(w, b, x, y);
        on_op("linear_add"), cpu_->linear_add(w, b, x, y);
    }
    void linear_swiglu(const Matrix& g, const Matrix& u, const Tensor& x, const Tensor& y) override {
        if (!forward_fused_) return Backend::linear_swiglu(g, u, x, y);
        on_op("linear_swiglu"), cpu_->linear_swiglu(g, u, x, y);
    }
    void rms_norm_linear_parts(const Tensor& x, const InputRmsNorm& n, const LinearPart* p, int c) override {
        if (!forward_fused_) return Backend::rms_norm_linear_parts(x, n, p, c);
        on_op("rms_norm_linear_parts"), cpu_->rms_norm_linear_parts(x, n, p, c);
    }
    void rms_norm_linear_swiglu(const Tensor& x, const InputRmsNorm& n, const Matrix& g, const Matrix& u, const Tensor& y) override {
        if (!forward_fused_) return Backend::rms_norm_linear_swiglu(x, n, g, u, y);
        on_op("rms_norm_linear_swiglu"), cpu_->rms_norm_linear_swiglu(x, n, g, u, y);
    }
    void rope_store_kv(const Tensor& q, const Tensor& k, const Tensor& v, const RopeParams& p, int n_kv, const Tensor& kc, const Tensor& vc, int64_t row,
                       const Tensor* at) override {
        if (!forward_fused_) return Backend::rope_store_kv(q, k, v, p, n_kv, kc, vc, row, at);
        on_op("rope_store_kv"), cpu_->rope_store_kv(q, k, v, p, n_kv, kc, vc, row, at);
    }
    void rms_norm_qkv_rope_store_kv(const Tensor& x, const InputRmsNorm& n, const LinearPart* qkv, const RopeParams& p, int n_kv, const Tensor& kc,
                                    const Tensor& vc, int64_t row, const Tensor* at) override {
        if (!forward_fused_) return Backend::rms_norm_qkv_rope_store_kv(x, n, qkv, p, n_kv, kc, vc, row, at);
        on_op("rms_norm_qkv_rope_store_kv"), cpu_->rms_norm_qkv_rope_store_kv(x, n, qkv, p, n_kv, kc, vc, row, at);
    }
    void copy_rows_at(const Tensor& s, const Tensor& d, const Tensor& r) override {
        if (!forward_fused_) return Backend::copy_rows_at(s, d, r);
        on_op("copy_rows_at"), cpu_->copy_rows_at(s, d, r);
    }

protected:
    virtual void on_op(const char* /*name*/) {}
    Backend& cpu() { return *cpu_; }

private:
    std::unique_ptr<Backend> cpu_;
    bool forward_fused_;
};

} // namespace winnow::test
