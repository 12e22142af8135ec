#include "decode/kv_cache.h"

#include "winnow/error.h"

namespace winnow {

KvCache::KvCache(Backend& be, int n_layer, int n_ctx, int kv_dim, GgmlType type) : n_ctx_(n_ctx), type_(type) {
    if (n_ctx < 1) throw Error(ErrorKind::invalid_argument, "the context must hold at least one token");
    require_support(be, Op::copy_rows, type);
    require_support(be, Op::attention, type);
    for (int i = 0; i < n_layer; ++i) {
        k_.push_back(be.alloc(type, n_ctx, kv_dim));
        v_.push_back(be.alloc(type, n_ctx, kv_dim));
    }
}

} // namespace winnow
