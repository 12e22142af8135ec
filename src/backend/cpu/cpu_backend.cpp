// The CPU reference backend: straightforward fp32 kernels, SIMD dot products on the stored weight types,
// OpenMP across the cores.
#include <cmath>
#include <omp.h>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/vec_dot.h"
#include "backend/cpu/vec_dot_q8.h"
#include "io/quant.h"
#include "winnow/error.h"

namespace winnow {

namespace {

class CpuBackend final : public Backend {
public:
    CpuBackend(int n_threads, CpuDotMode mode) : n_threads_(n_threads > 0 ? n_threads : omp_get_num_procs()), mode_(mode) {}
    const char* name() const override { return "cpu"; }

    void linear(const Matrix& w, const Vector* bias, const float* x, float* y, int n_tokens) override {
        const int64_t rows = w.rows, cols = w.cols;
        const float* b = (bias && !bias->empty()) ? bias->data() : nullptr;
        if (mode_ == CpuDotMode::q8 && cpu::has_q8_path(w.type)) {
            // llama.cpp's scheme: quantize each token's activation once, integer dot products per row
            const size_t xq_bytes = cpu::q8_activation_bytes(w.type, cols);
            xq_.resize(xq_bytes * n_tokens);
            for (int t = 0; t < n_tokens; ++t) cpu::quantize_activation_q8(w.type, x + t * cols, cols, xq_.data() + t * xq_bytes);
            const uint8_t* xq = xq_.data();
#pragma omp parallel for num_threads(n_threads_) schedule(static)
            for (int64_t r = 0; r < rows; ++r) {
                const float br = b ? b[r] : 0.0f;
                for (int t = 0; t < n_tokens; ++t) y[t * rows + r] = cpu::vec_dot_q8(w.type, w.row(r), xq + t * xq_bytes, cols) + br;
            }
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
        // prefill: decode each weight row once, then dot it with every token
#pragma omp parallel num_threads(n_threads_)
        {
            std::vector<float> wrow(cols);
#pragma omp for schedule(static)
            for (int64_t r = 0; r < rows; ++r) {
                dequantize_row(w.type, w.row(r), wrow.data(), cols);
                const float br = b ? b[r] : 0.0f;
                for (int t = 0; t < n_tokens; ++t) y[t * rows + r] = cpu::vec_dot_f32(wrow.data(), x + t * cols, cols) + br;
            }
        }
    }

    void get_rows(const Matrix& table, const int32_t* ids, int n, float* out) override {
        for (int i = 0; i < n; ++i) dequantize_row(table.type, table.row(ids[i]), out + static_cast<size_t>(i) * table.cols, table.cols);
    }

    void rms_norm(const float* x, const Vector& w, float eps, float* y, int n_tokens, int dim) override {
        for (int t = 0; t < n_tokens; ++t) {
            const float* xt = x + static_cast<size_t>(t) * dim;
            float* yt = y + static_cast<size_t>(t) * dim;
            double ss = 0.0;
            for (int i = 0; i < dim; ++i) ss += static_cast<double>(xt[i]) * xt[i];
            const float scale = static_cast<float>(1.0 / std::sqrt(ss / dim + eps));
            for (int i = 0; i < dim; ++i) yt[i] = xt[i] * scale * w[i];
        }
    }

    void layer_norm(const float* x, const Vector& w, const Vector& b, float eps, float* y, int n_tokens, int dim) override {
        for (int t = 0; t < n_tokens; ++t) {
            const float* xt = x + static_cast<size_t>(t) * dim;
            float* yt = y + static_cast<size_t>(t) * dim;
            double mean = 0.0;
            for (int i = 0; i < dim; ++i) mean += xt[i];
            mean /= dim;
            double var = 0.0;
            for (int i = 0; i < dim; ++i) var += (xt[i] - mean) * (xt[i] - mean);
            var /= dim;
            const float scale = static_cast<float>(1.0 / std::sqrt(var + eps));
            for (int i = 0; i < dim; ++i) yt[i] = static_cast<float>(xt[i] - mean) * scale * w[i] + b[i];
        }
    }

    void rope(float* x, int n_tokens, int n_heads, int head_dim, int rope_dim, int pos0, float base, RopeStyle style) override {
        if (style == RopeStyle::none) return;
        const int half = rope_dim / 2;
        for (int t = 0; t < n_tokens; ++t) {
            const double pos = pos0 + t;
            for (int i = 0; i < half; ++i) {
                // theta_i = pos * base^(-2i / rope_dim), computed in double so the angle itself adds no error
                const double theta = pos * std::pow(static_cast<double>(base), -2.0 * i / rope_dim);
                const float c = static_cast<float>(std::cos(theta)), s = static_cast<float>(std::sin(theta));
                for (int h = 0; h < n_heads; ++h) {
                    float* xh = x + (static_cast<size_t>(t) * n_heads + h) * head_dim;
                    const int a = style == RopeStyle::adjacent_pairs ? 2 * i : i;
                    const int bidx = style == RopeStyle::adjacent_pairs ? 2 * i + 1 : i + half;
                    const float x0 = xh[a], x1 = xh[bidx];
                    xh[a] = x0 * c - x1 * s;
                    xh[bidx] = x0 * s + x1 * c;
                }
            }
        }
    }

    void attention(const float* q, const float* k_cache, const float* v_cache, int pos0, int n_tokens, int n_head, int n_head_kv,
                   int head_dim, float* out) override {
        const int group = n_head / n_head_kv;
        const int kv_dim = n_head_kv * head_dim;
        const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
#pragma omp parallel num_threads(n_threads_)
        {
            std::vector<float> scores(pos0 + n_tokens);
#pragma omp for collapse(2) schedule(static)
            for (int t = 0; t < n_tokens; ++t) {
                for (int h = 0; h < n_head; ++h) {
                    const int n_keys = pos0 + t + 1;
                    const float* qh = q + (static_cast<size_t>(t) * n_head + h) * head_dim;
                    const int kvh = h / group;
                    float mx = -INFINITY;
                    for (int j = 0; j < n_keys; ++j) {
                        scores[j] = cpu::vec_dot_f32(qh, k_cache + static_cast<size_t>(j) * kv_dim + kvh * head_dim, head_dim) * scale;
                        mx = std::max(mx, scores[j]);
                    }
                    float sum = 0.0f;
                    for (int j = 0; j < n_keys; ++j) {
                        scores[j] = std::exp(scores[j] - mx);
                        sum += scores[j];
                    }
                    const float inv = 1.0f / sum;
                    float* oh = out + (static_cast<size_t>(t) * n_head + h) * head_dim;
                    for (int d = 0; d < head_dim; ++d) oh[d] = 0.0f;
                    for (int j = 0; j < n_keys; ++j) {
                        const float p = scores[j] * inv;
                        const float* vj = v_cache + static_cast<size_t>(j) * kv_dim + kvh * head_dim;
                        for (int d = 0; d < head_dim; ++d) oh[d] += p * vj[d];
                    }
                }
            }
        }
    }

    void gelu_tanh(float* x, size_t n) override {
        constexpr float k = 0.7978845608028654f; // sqrt(2 / pi)
        for (size_t i = 0; i < n; ++i) {
            const float v = x[i];
            x[i] = 0.5f * v * (1.0f + std::tanh(k * (v + 0.044715f * v * v * v)));
        }
    }

    void swiglu(const float* gate, const float* up, float* out, size_t n) override {
        for (size_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
    }

    void add(float* y, const float* x, size_t n) override {
        for (size_t i = 0; i < n; ++i) y[i] += x[i];
    }

private:
    int n_threads_;
    CpuDotMode mode_;
    std::vector<uint8_t> xq_;              // quantized activations (q8 mode)
    cpu::PreparedActivation prepared_; // reused across calls to avoid reallocating
};

} // namespace

const char* to_string(CpuDotMode m) { return m == CpuDotMode::f32 ? "f32" : "q8"; }

std::unique_ptr<Backend> make_cpu_backend(int n_threads, CpuDotMode mode) { return std::make_unique<CpuBackend>(n_threads, mode); }

} // namespace winnow
