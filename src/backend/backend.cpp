#include "backend/backend.h"

#include <cmath>

#include "winnow/error.h"

namespace winnow {

const char* to_string(Op op) {
    switch (op) {
    case Op::get_rows: return "get_rows";
    case Op::linear: return "linear";
    case Op::rms_norm: return "rms_norm";
    case Op::layer_norm: return "layer_norm";
    case Op::rope: return "rope";
    case Op::copy_rows: return "copy_rows";
    case Op::attention: return "attention";
    case Op::gelu_tanh: return "gelu_tanh";
    case Op::swiglu: return "swiglu";
    case Op::add: return "add";
    case Op::top_k: return "top_k";
    }
    return "?";
}

const char* to_string(CpuDotMode m) { return m == CpuDotMode::f32 ? "f32" : "q8"; }

void require_support(const Backend& be, Op op, GgmlType type) {
    if (!be.supports(op, type))
        throw Error(ErrorKind::unsupported, std::string("the ") + be.name() + " backend has no " + to_string(op) + " for " + ggml_type_name(type) +
                                                (op == Op::linear || op == Op::get_rows ? " weights" : " tensors"));
}

void BlockMask::validate() const {
    if (block < 1 || n_blocks < 1 || keep.size() != static_cast<size_t>(n_blocks) * n_blocks)
        throw Error(ErrorKind::invalid_argument, "block mask: need block >= 1, n_blocks >= 1 and n_blocks^2 entries");
    for (int b = 0; b < n_blocks; ++b)
        if (!keep[static_cast<size_t>(b) * n_blocks + b])
            throw Error(ErrorKind::invalid_argument, "block mask: diagonal block " + std::to_string(b) + " is not kept (its rows would attend to nothing)");
}

float AttentionParams::effective_scale() const { return scale != 0 ? scale : 1.0f / std::sqrt(static_cast<float>(head_dim)); }

} // namespace winnow
