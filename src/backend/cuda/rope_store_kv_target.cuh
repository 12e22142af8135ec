#pragma once
// Where one head of row t of a rope_store_kv launch (RopeStoreKvArgs) is rotated and written: rope_store_kv.cu and the
// fused qkv_rope_store.cu both read it from here, so they cannot disagree on a position, a cache row or
// copy_rows_at's rule (rows that do not fit a cache at a device row trap: the host checks a host row before the launch,
// the CPU backend throws on a device row that does not fit, and a kernel cannot report it any other way).
#include <cstdint>

#include "backend/cuda/kernels.h"

namespace winnow::cuda {

struct KvRowTarget {
    int64_t pos;           // rope's position of the row: pos0 (or *pos_dev) + t
    int64_t cache_at;      // the head's first cache element in the destination row
    int64_t kv_at;         // the head's first element in the row of k or v
};

__device__ __forceinline__ KvRowTarget kv_row_target(const RopeStoreKvArgs& a, int64_t t, int head) {
    const int64_t kv_dim = static_cast<int64_t>(a.n_head_kv) * a.head_dim, head_at = static_cast<int64_t>(head) * a.head_dim;
    const int64_t row = a.row_dev ? *a.row_dev : a.dst_row;
    if (row < 0 || row > a.k_cache_rows - a.rows || row > a.v_cache_rows - a.rows) __trap(); // (a sticky error; see elementwise.cu)
    return {(a.pos_dev ? *a.pos_dev : a.pos0) + t, (row + t) * kv_dim + head_at, t * kv_dim + head_at};
}

} // namespace winnow::cuda
