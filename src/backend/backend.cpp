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
    if (block < 1 || n_blocks < 1 || groups < 1 || keep.size() != static_cast<size_t>(groups) * n_blocks * n_blocks)
        throw Error(ErrorKind::invalid_argument, "block mask: need block >= 1, n_blocks >= 1, groups >= 1 and groups x n_blocks^2 entries");
    for (int g = 0; g < groups; ++g)
        for (int b = 0; b < n_blocks; ++b)
            if (!row(b, g)[b])
                throw Error(ErrorKind::invalid_argument, "block mask: diagonal block " + std::to_string(b) + " of group " + std::to_string(g) +
                                                             " is not kept (its rows would attend to nothing)");
}

void BlockMask::check_heads(int n_head_kv) const {
    if (groups != 1 && groups != n_head_kv)
        throw Error(ErrorKind::invalid_argument, "block mask: " + std::to_string(groups) + " head groups for a layer with " + std::to_string(n_head_kv) +
                                                     " KV heads (need 1 or " + std::to_string(n_head_kv) + ")");
}

void Backend::copy_rows_at(const Tensor& src, const Tensor& dst, const Tensor& row) {
    if (row.type() != GgmlType::I32 || row.numel() != 1) throw Error(ErrorKind::invalid_argument, "copy_rows_at: the row must be one I32, got " + row.describe());
    int32_t r = 0;
    download(row, &r);
    copy_rows(src, dst, r);
}

void Backend::begin_recording() { throw Error(ErrorKind::unsupported, std::string("the ") + name() + " backend cannot record ops"); }
int Backend::end_recording() { throw Error(ErrorKind::unsupported, std::string("the ") + name() + " backend cannot record ops"); }
void Backend::replay(int) { throw Error(ErrorKind::unsupported, std::string("the ") + name() + " backend cannot record ops"); }

int resolve_position(const Tensor* pos, int pos0) {
    if (!pos) return pos0;
    if (pos->device() != Device::cpu || pos->type() != GgmlType::I32 || pos->numel() != 1)
        throw Error(ErrorKind::invalid_argument, "an op's position must be one I32 in host memory here, got " + pos->describe());
    return *pos->data<int32_t>();
}

float AttentionParams::effective_scale() const { return scale != 0 ? scale : 1.0f / std::sqrt(static_cast<float>(head_dim)); }

} // namespace winnow
