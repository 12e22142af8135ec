// Dense causal GQA attention for prefill (many query rows): flash attention on CUDA cores. A block takes kTileRows
// query rows of one head and walks their keys kTileKeys at a time: the tile's keys and values are loaded once into
// shared memory (coalesced, converted to fp32) and serve all the block's rows, where attention.cu's kernel (a block
// per row and head) reads every key of every row from L2 again: 16 rows a block read a prompt's K and V 16 times
// less. Each warp owns kTileRows / kTileWarps rows; for a row, lane j scores key j of the tile, the warp keeps the
// row's running max and exp-sum (the online softmax: earlier sums rescaled by exp(old max - new max)), and each lane
// accumulates the output dimensions d = lane, lane + 32, ... over the tile's keys in key order, their weights passed
// by shuffles. A row stops at its own position (causal), so a tile past it costs that row nothing.
//
// The twin is CpuBackend::attention (and the double reference, ref::attention_cached), which the op harness's dense
// prefill cases hold this kernel to; the sums are in another order than attention.cu's two-pass softmax (the same
// values to fp32 rounding). Decode rows (a recorded step included) never come here: their bits must match the split
// kernel's, which attention.cu's kernel is built to give.
#include <cmath>

#include "backend/cuda/attention_window.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/weight_access.cuh"

namespace winnow::cuda {

namespace {

constexpr int kTileRows = 16;
constexpr int kTileKeys = 32; // one key per lane
constexpr int kTileWarps = 4;
constexpr int kRowsPerWarp = kTileRows / kTileWarps;
constexpr int kDimsPerLane = kMaxTiledHeadDim / 32;
static_assert(kTileRows % kTileWarps == 0 && kMaxTiledHeadDim % 32 == 0);

template <GgmlType C>
__global__ void attention_tiles_kernel(const float* __restrict__ q, const void* __restrict__ k, const void* __restrict__ v, float* __restrict__ out,
                                       int n_rows, int pos0, int n_head, int n_head_kv, int hd, float scale, int window, float softcap) {
    pdl_wait();
    pdl_launch_dependents();
    __shared__ float qs[kTileRows][kMaxTiledHeadDim];
    __shared__ float ks[kTileKeys][kMaxTiledHeadDim + 1]; // +1: lane j reads row j, dimension d: banks (j + d) % 32
    __shared__ float vs[kTileKeys][kMaxTiledHeadDim];
    const int h = blockIdx.x, row0 = blockIdx.y * kTileRows;
    const int rows = min(kTileRows, n_rows - row0);
    const int kvh = h / (n_head / n_head_kv);
    const int64_t kv_dim = static_cast<int64_t>(n_head_kv) * hd, kv_base = static_cast<int64_t>(kvh) * hd;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;

    for (int e = threadIdx.x; e < kTileRows * hd; e += blockDim.x) {
        const int r = e / hd, d = e % hd;
        qs[r][d] = r < rows ? q[(static_cast<size_t>(row0 + r) * n_head + h) * hd + d] : 0.0f;
    }
    float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][kDimsPerLane];
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
        m[i] = -INFINITY, l[i] = 0.0f;
#pragma unroll
        for (int t = 0; t < kDimsPerLane; ++t) acc[i][t] = 0.0f;
    }

    const int n_keys = pos0 + row0 + rows; // the block's last row sees keys [0, n_keys)
    const int keys_from = first_key(pos0 + row0, window) / kTileKeys * kTileKeys; // the first row's window, whole tiles
    for (int j0 = keys_from; j0 < n_keys; j0 += kTileKeys) {
        __syncthreads(); // the previous tile's readers are done (and, the first time, qs is written)
        for (int e = threadIdx.x; e < kTileKeys * hd; e += blockDim.x) {
            const int jj = e / hd, d = e % hd, j = j0 + jj;
            const bool key = j < n_keys; // past the block's keys: zeros (never weighed, but 0 * NaN would be NaN)
            ks[jj][d] = key ? load_act<C>(k, j * kv_dim + kv_base + d) : 0.0f;
            vs[jj][d] = key ? load_act<C>(v, j * kv_dim + kv_base + d) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int i = 0; i < kRowsPerWarp; ++i) {
            const int r = warp * kRowsPerWarp + i;
            const int q_pos = pos0 + row0 + r, lo = first_key(q_pos, window);
            // warp-uniform: no row, or a tile wholly after the row's position or before its window
            if (r >= rows || j0 > q_pos || j0 + kTileKeys <= lo) continue;
            const int j = j0 + lane;
            float s = -INFINITY;
            if (j <= q_pos && j >= lo) {
                float dot = 0.0f;
                for (int d = 0; d < hd; ++d) dot = fmaf(qs[r][d], ks[lane][d], dot);
                s = softcap_score(dot * scale, softcap);
            }
            const float m_new = fmaxf(m[i], warp_max(s)); // finite: a key of [lo, q_pos] is in the tile
            const float p = s == -INFINITY ? 0.0f : expf(s - m_new);
            const float rescale = expf(m[i] - m_new); // 0 on the row's first tile (m = -inf)
            l[i] = l[i] * rescale + warp_sum(p);
#pragma unroll
            for (int t = 0; t < kDimsPerLane; ++t) acc[i][t] *= rescale;
            // keys past the row's position or before its window: weight 0, but an infinite value there (a later token's,
            // an earlier one's) would make 0 * inf = NaN
            const int last = min(kTileKeys, q_pos - j0 + 1); // warp-uniform
            for (int jj = max(0, lo - j0); jj < last; ++jj) {
                const float pj = __shfl_sync(0xffffffffu, p, jj);
#pragma unroll
                for (int t = 0; t < kDimsPerLane; ++t) {
                    const int d = lane + 32 * t;
                    if (d < hd) acc[i][t] = fmaf(pj, vs[jj][d], acc[i][t]);
                }
            }
            m[i] = m_new;
        }
    }
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
        const int r = warp * kRowsPerWarp + i;
        if (r >= rows) continue;
        const float factor = 1.0f / l[i];
        float* orow = out + (static_cast<size_t>(row0 + r) * n_head + h) * hd;
#pragma unroll
        for (int t = 0; t < kDimsPerLane; ++t) {
            const int d = lane + 32 * t;
            if (d < hd) orow[d] = acc[i][t] * factor;
        }
    }
}

} // namespace

void launch_attention_tiles(const float* q, const void* k_cache, const void* v_cache, GgmlType cache_type, float* out, int n_tokens, int pos0,
                            int n_head, int n_head_kv, int head_dim, float scale, int window, float softcap, cudaStream_t s) {
    if (n_tokens == 0) return;
    if (head_dim < 1 || head_dim > kMaxTiledHeadDim)
        throw Error(ErrorKind::invalid_argument, "cuda tiled attention: head_dim " + std::to_string(head_dim) + " is not in [1, " +
                                                     std::to_string(kMaxTiledHeadDim) + "]");
    const dim3 grid(static_cast<unsigned>(n_head), static_cast<unsigned>((n_tokens + kTileRows - 1) / kTileRows));
    dispatch_act_type(cache_type, [&]<GgmlType C>() {
        launch(attention_tiles_kernel<C>, grid, kTileWarps * 32, 0, s, q, k_cache, v_cache, out, n_tokens, pos0, n_head, n_head_kv, head_dim, scale,
               window, softcap);
    });
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda
