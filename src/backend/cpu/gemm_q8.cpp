// q8 prefill products: the operands are packed once per call (activations quantized as vec_dot_q8 quantizes them,
// weight nibbles spread to bytes), then a register-tiled kernel for the CPU's instruction set runs over each
// thread's rows. See gemm.h.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <omp.h>

#include "backend/cpu/gemm.h"
#include "backend/cpu/gemm_q8_operands.h"
#include "backend/cpu/vec_dot_q8.h"
#include "io/quant.h"
#include "winnow/error.h"

namespace winnow::cpu {

namespace {

// Any CPU: the same arithmetic as the tiled kernels, one (row, token) at a time, in scalar order.
void gemm_q8_rows_scalar(const Q8Operands& p, int64_t r0, int64_t r1) {
    const int nb = p.nb;
    const int64_t cols = static_cast<int64_t>(nb) * 32;
    for (int t = 0; t < p.n_tokens; ++t)
        for (int64_t r = r0; r < r1; ++r) {
            const uint8_t* w = p.wq + r * cols;
            const int8_t* x = p.xq + static_cast<int64_t>(t) * cols;
            float s = 0.0f, off = 0.0f;
            for (int i = 0; i < nb; ++i) {
                // signed weights read through an int8_t pointer: GCC 12 at -O3 with AVX-512 VNNI turns a sum of
                // static_cast<int8_t>(byte) * int8 into an unsigned-by-signed dot product (wrong code, seen here)
                int sumi = 0;
                if (p.w_signed)
                    for (int j = 0; j < 32; ++j) sumi += reinterpret_cast<const int8_t*>(w)[i * 32 + j] * x[i * 32 + j];
                else
                    for (int j = 0; j < 32; ++j) sumi += w[i * 32 + j] * x[i * 32 + j];
                s += (p.wd[r * nb + i] * p.xd[static_cast<int64_t>(t) * nb + i]) * static_cast<float>(sumi);
                if (!p.w_signed) off += p.wm[r * nb + i] * p.xs_tiled[(static_cast<int64_t>(t / kQ8TileTokens) * nb + i) * kQ8TileTokens + t % kQ8TileTokens];
            }
            p.y[static_cast<int64_t>(t) * p.rows + r] = (s + off) + (p.bias ? p.bias[r] : 0.0f);
        }
}

bool cpu_has(GemmQ8Kernel k) {
    switch (k) {
    case GemmQ8Kernel::scalar: return true;
    // F16C (the kernels' fp16 scales) is not asked for: clang's builtin does not know the name, and every CPU with
    // AVX2 has it (Intel since Ivy Bridge, AMD since Piledriver, both before AVX2)
    case GemmQ8Kernel::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case GemmQ8Kernel::avx512_vnni:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512vnni");
    default: return false;
    }
}

GemmQ8Kernel best_kernel() {
    for (GemmQ8Kernel k : {GemmQ8Kernel::avx512_vnni, GemmQ8Kernel::avx2})
        if (cpu_has(k)) return k;
    return GemmQ8Kernel::scalar;
}

std::atomic<GemmQ8Kernel> forced{GemmQ8Kernel::automatic};

using RowsKernel = void (*)(const Q8Operands&, int64_t, int64_t);
RowsKernel kernel_fn(GemmQ8Kernel k) {
    switch (k) {
    case GemmQ8Kernel::avx512_vnni: return gemm_q8_rows_avx512_vnni;
    case GemmQ8Kernel::avx2: return gemm_q8_rows_avx2;
    default: return gemm_q8_rows_scalar;
    }
}

// One token's activation: quantized by the per-row path's own quantizer (into block_buf), then split into planar
// arrays: the quants at xq, the block scales at xd[i] and (Q4_1) d · sum(q) at xs[i * xs_stride].
void quantize_planar(GgmlType type, const float* x, int64_t cols, uint8_t* block_buf, int8_t* xq, float* xd, float* xs, size_t xs_stride) {
    quantize_activation_q8(type, x, cols, block_buf);
    const int nb = static_cast<int>(cols / kQuantBlock);
    const bool with_sum = uses_q8_1(type);
    const size_t stride = with_sum ? sizeof(BlockQ8_1) : sizeof(BlockQ8_0);
    for (int i = 0; i < nb; ++i) {
        const uint8_t* b = block_buf + i * stride;
        uint16_t d, sum;
        std::memcpy(&d, b, 2);
        xd[i] = fp16_to_fp32(d);
        if (with_sum) {
            std::memcpy(&sum, b + 2, 2);
            xs[i * xs_stride] = fp16_to_fp32(sum);
        }
        std::memcpy(xq + i * kQuantBlock, b + (with_sum ? 4 : 2), kQuantBlock);
    }
}

// Weight rows [r0, r1) spread to one byte per weight (see Q8Operands).
void pack_weights(const Matrix& w, int64_t r0, int64_t r1, GemmQ8Scratch& s) {
    const int nb = static_cast<int>(w.cols / kQuantBlock);
    for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* row = w.row(r);
        uint8_t* q = s.wq.data() + r * w.cols;
        for (int i = 0; i < nb; ++i, q += kQuantBlock) {
            const size_t k = static_cast<size_t>(r) * nb + i;
            if (w.type == GgmlType::Q8_0) {
                const auto* b = reinterpret_cast<const BlockQ8_0*>(row) + i;
                s.wd[k] = fp16_to_fp32(b->d);
                std::memcpy(q, b->qs, kQuantBlock);
            } else if (w.type == GgmlType::Q4_0) {
                const auto* b = reinterpret_cast<const BlockQ4_0*>(row) + i;
                s.wd[k] = fp16_to_fp32(b->d);
                for (int j = 0; j < 16; ++j) q[j] = static_cast<uint8_t>((b->qs[j] & 0x0f) - 8), q[j + 16] = static_cast<uint8_t>((b->qs[j] >> 4) - 8);
            } else {
                const auto* b = reinterpret_cast<const BlockQ4_1*>(row) + i;
                s.wd[k] = fp16_to_fp32(b->d);
                s.wm[k] = fp16_to_fp32(b->m);
                for (int j = 0; j < 16; ++j) q[j] = b->qs[j] & 0x0f, q[j + 16] = b->qs[j] >> 4;
            }
        }
    }
}

} // namespace

bool gemm_q8_kernel_available(GemmQ8Kernel k) { return k == GemmQ8Kernel::automatic || cpu_has(k); }

const char* gemm_q8_kernel_name(GemmQ8Kernel k) {
    switch (k) {
    case GemmQ8Kernel::automatic: return "automatic";
    case GemmQ8Kernel::scalar: return "scalar";
    case GemmQ8Kernel::avx2: return "avx2";
    case GemmQ8Kernel::avx512_vnni: return "avx512-vnni";
    }
    return "?";
}

GemmQ8Kernel gemm_q8_kernel_in_use() {
    const GemmQ8Kernel k = forced.load();
    return k == GemmQ8Kernel::automatic ? best_kernel() : k;
}

void gemm_q8_force_kernel(GemmQ8Kernel k) {
    if (!gemm_q8_kernel_available(k)) throw Error(ErrorKind::unsupported, std::string("this CPU cannot run the ") + gemm_q8_kernel_name(k) + " kernel");
    forced.store(k);
}

void gemm_q8(const Matrix& w, const float* bias, const float* x, int n_tokens, float* y, int n_threads, GemmQ8Scratch& s) {
    if (!has_q8_gemm_path(w.type) || w.cols % kQuantBlock != 0)
        throw Error(ErrorKind::unsupported, std::string("gemm_q8: no 8-bit-activation product for ") + ggml_type_name(w.type) + " " + w.name);
    const int64_t rows = w.rows, cols = w.cols;
    const int nb = static_cast<int>(cols / kQuantBlock);
    const int token_groups = (n_tokens + kQ8TileTokens - 1) / kQ8TileTokens;
    s.wq.resize(static_cast<size_t>(rows * cols));
    s.wd.resize(static_cast<size_t>(rows) * nb);
    s.wm.resize(w.type == GgmlType::Q4_1 ? static_cast<size_t>(rows) * nb : 0);
    s.xq.resize(static_cast<size_t>(n_tokens) * cols);
    s.xd.resize(static_cast<size_t>(n_tokens) * nb);
    s.xs.assign(w.type == GgmlType::Q4_1 ? static_cast<size_t>(token_groups) * nb * kQ8TileTokens : 0, 0.0f); // zero: the padding lanes

    Q8Operands p;
    p.wq = s.wq.data(), p.wd = s.wd.data(), p.wm = s.wm.data(), p.w_signed = w.type != GgmlType::Q4_1, p.rows = rows, p.nb = nb;
    p.xq = s.xq.data(), p.xd = s.xd.data(), p.xs_tiled = s.xs.data(), p.n_tokens = n_tokens, p.bias = bias, p.y = y;
    const RowsKernel kernel = kernel_fn(gemm_q8_kernel_in_use());
    const size_t block_bytes = q8_activation_bytes(w.type, cols);
#pragma omp parallel num_threads(n_threads)
    {
        std::vector<uint8_t> block_buf(block_bytes);
#pragma omp for schedule(static)
        for (int t = 0; t < n_tokens; ++t) // xs: [t / 4][block][t % 4] (Q8Operands::xs_tiled)
            quantize_planar(w.type, x + static_cast<int64_t>(t) * cols, cols, block_buf.data(), s.xq.data() + static_cast<size_t>(t) * cols,
                            s.xd.data() + static_cast<size_t>(t) * nb,
                            s.xs.empty() ? nullptr : s.xs.data() + static_cast<size_t>(t / kQ8TileTokens) * nb * kQ8TileTokens + t % kQ8TileTokens,
                            kQ8TileTokens);
        // each thread packs and multiplies its own rows (a multiple of 4, so tiles stay whole)
        const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
        const int64_t quads = (rows + 3) / 4, r0 = std::min(rows, quads * tid / nt * 4), r1 = std::min(rows, quads * (tid + 1) / nt * 4);
        if (r0 < r1) {
            pack_weights(w, r0, r1, s);
            kernel(p, r0, r1);
        }
    }
}

namespace {

Q8WeightKind row_kind(GgmlType t) {
    switch (t) {
    case GgmlType::Q4_1: return Q8WeightKind::q4_1;
    case GgmlType::Q4_0: return Q8WeightKind::q4_0;
    case GgmlType::Q5_0: return Q8WeightKind::q5_0;
    case GgmlType::Q5_1: return Q8WeightKind::q5_1;
    case GgmlType::IQ4_NL: return Q8WeightKind::iq4_nl;
    default: return Q8WeightKind::q8_0;
    }
}

Q8KWeightKind k_row_kind(GgmlType t) {
    switch (t) {
    case GgmlType::Q2_K: return Q8KWeightKind::q2_k;
    case GgmlType::Q3_K: return Q8KWeightKind::q3_k;
    case GgmlType::Q4_K: return Q8KWeightKind::q4_k;
    case GgmlType::Q5_K: return Q8KWeightKind::q5_k;
    case GgmlType::IQ4_XS: return Q8KWeightKind::iq4_xs;
    default: return Q8KWeightKind::q6_k;
    }
}

// Rows [0, rows) split evenly over the threads, each running fn(r0, r1).
template <typename Fn>
void split_rows(int64_t rows, int n_threads, Fn fn) {
#pragma omp parallel num_threads(n_threads)
    {
        const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
        const int64_t r0 = rows * tid / nt, r1 = rows * (tid + 1) / nt;
        if (r0 < r1) fn(r0, r1);
    }
}

} // namespace

void gemv_q8(const Matrix& w, const float* bias, const float* x, float* y, int n_threads, GemmQ8Scratch& s) {
    const int64_t block = uses_q8_k(w.type) ? kQuantBlockK : kQuantBlock;
    if (!has_q8_path(w.type) || w.cols % block != 0)
        throw Error(ErrorKind::unsupported, std::string("gemv_q8: no 8-bit-activation product for ") + ggml_type_name(w.type) + " " + w.name);
    const int64_t rows = w.rows, cols = w.cols;
    const GemmQ8Kernel kernel = gemm_q8_kernel_in_use();
    s.xblocks.resize(q8_activation_bytes(w.type, cols));
    if (kernel == GemmQ8Kernel::scalar || uses_q8_k(w.type)) // Q8_K blocks are what both the scalar and the SIMD rows read
        quantize_activation_q8(w.type, x, cols, s.xblocks.data());
    if (kernel == GemmQ8Kernel::scalar) {
        const uint8_t* xq = s.xblocks.data();
#pragma omp parallel for num_threads(n_threads) schedule(static)
        for (int64_t r = 0; r < rows; ++r) y[r] = vec_dot_q8(w.type, w.row(r), xq, cols) + (bias ? bias[r] : 0.0f);
        return;
    }
    if (uses_q8_k(w.type)) {
        Q8KRowOperands p;
        p.w = w.data, p.row_bytes = w.row_bytes, p.n_super = static_cast<int>(cols / kQuantBlockK), p.xk = s.xblocks.data();
        p.kind = k_row_kind(w.type);
        p.bias = bias, p.y = y;
        split_rows(rows, n_threads, [&](int64_t r0, int64_t r1) { gemv_q8k_rows_avx2(p, r0, r1); });
        return;
    }
    const int nb = static_cast<int>(cols / kQuantBlock);
    s.xq.resize(cols);
    s.xd.resize(nb);
    s.xs.resize(nb);
    s.xsum.resize(nb);
    quantize_planar(w.type, x, cols, s.xblocks.data(), s.xq.data(), s.xd.data(), s.xs.data(), 1);
    for (int i = 0; i < nb; ++i) {
        int sum = 0;
        for (int j = 0; j < kQuantBlock; ++j) sum += s.xq[static_cast<size_t>(i) * kQuantBlock + j];
        s.xsum[i] = sum;
    }
    Q8RowOperands p;
    p.w = w.data, p.row_bytes = w.row_bytes, p.nb = nb, p.xq = s.xq.data(), p.xd = s.xd.data(), p.xs = s.xs.data(), p.xsum = s.xsum.data();
    p.kind = row_kind(w.type);
    p.bias = bias, p.y = y;
    const auto fn = kernel == GemmQ8Kernel::avx512_vnni ? gemv_q8_rows_avx512_vnni : gemv_q8_rows_avx2;
    split_rows(rows, n_threads, [&](int64_t r0, int64_t r1) { fn(p, r0, r1); });
}

} // namespace winnow::cpu
