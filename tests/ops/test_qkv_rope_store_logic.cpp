// The fused qkv_rope_store kernel's work split (backend/cuda/qkv_rope_store_logic.cuh) run on the host: for each shape,
// every warp item and the output elements it computes (through rope_pair_dims, as the kernel does). Every element of
// q, k and v must be computed by exactly one warp, the pairs a warp rotates must be the pairs rope rotates, and the
// dims rope leaves alone must come from single-row items. On a machine without a GPU this is what checks the kernel's
// indexing; the op harness (rms_norm_qkv_rope_store_kv cases) compares the CUDA build with the unfused ops there.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backend/cuda/qkv_rope_store_logic.cuh"

namespace {

using namespace winnow::cuda;

struct QkvShape {
    int n_head, n_head_kv, head_dim, rope_dim;
    bool adjacent;
};

// Per output element of q, k, v: how many warps compute it; and whether an element rope rotates came from a pair item.
void check_qkv_split(const QkvShape& c) {
    SCOPED_TRACE("heads " + std::to_string(c.n_head) + "/" + std::to_string(c.n_head_kv) + " of " + std::to_string(c.head_dim) + ", rope_dim " +
                 std::to_string(c.rope_dim) + (c.adjacent ? ", adjacent" : ", rotate-half"));
    const RopeStoreKvShape s{c.n_head, c.n_head_kv, c.head_dim, c.rope_dim / 2};
    std::vector<int> q(c.n_head * c.head_dim, 0), k(c.n_head_kv * c.head_dim, 0), v(c.n_head_kv * c.head_dim, 0);
    std::vector<int> q_paired(q.size(), 0), k_paired(k.size(), 0);
    const int n = qkv_rope_items_per_row(s);
    for (int idx = 0; idx < n; ++idx) {
        const QkvRopeItem it = qkv_rope_item(s, idx);
        const bool pair = it.kind == QkvRopeKind::q_pair || it.kind == QkvRopeKind::k_pair;
        std::vector<int>& out = it.kind == QkvRopeKind::q_pair || it.kind == QkvRopeKind::q_dim ? q : it.kind == QkvRopeKind::v_dim ? v : k;
        std::vector<int>* paired = it.kind == QkvRopeKind::q_pair ? &q_paired : it.kind == QkvRopeKind::k_pair ? &k_paired : nullptr;
        ASSERT_GE(it.head, 0);
        ASSERT_LT(it.head, it.kind == QkvRopeKind::q_pair || it.kind == QkvRopeKind::q_dim ? c.n_head : c.n_head_kv) << "item " << idx;
        if (pair) {
            ASSERT_LT(it.index, s.half) << "item " << idx;
            const RopePairDims d = rope_pair_dims(it.index, s.half, c.adjacent);
            for (int dim : {d.a, d.b}) {
                ASSERT_LT(dim, c.rope_dim) << "item " << idx;
                ++out[it.head * c.head_dim + dim];
                ++(*paired)[it.head * c.head_dim + dim];
            }
        } else {
            ASSERT_LT(it.index, c.head_dim) << "item " << idx;
            if (it.kind != QkvRopeKind::v_dim) {
                ASSERT_GE(it.index, c.rope_dim) << "item " << idx << ": a rotated dim from a single row";
            }
            ++out[it.head * c.head_dim + it.index];
        }
    }
    for (size_t i = 0; i < q.size(); ++i) ASSERT_EQ(q[i], 1) << "q element " << i;
    for (size_t i = 0; i < k.size(); ++i) ASSERT_EQ(k[i], 1) << "k element " << i;
    for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(v[i], 1) << "v element " << i;
    for (size_t i = 0; i < q.size(); ++i) EXPECT_EQ(q_paired[i], static_cast<int>(i % c.head_dim) < c.rope_dim ? 1 : 0) << "q element " << i;
    for (size_t i = 0; i < k.size(); ++i) EXPECT_EQ(k_paired[i], static_cast<int>(i % c.head_dim) < c.rope_dim ? 1 : 0) << "k element " << i;
}

TEST(QkvRopeStoreLogic, EveryElementOnceAndEveryPairRotatedTogether) {
    const QkvShape shapes[] = {{9, 3, 64, 64, false},  {9, 3, 64, 64, true},  {32, 8, 64, 64, false}, // SmolLM2, GGUF pairs, Llama-3.2-1B
                            {5, 5, 80, 32, true},   {4, 2, 80, 32, false}, {12, 12, 64, 0, false}, // partial rotations, none
                            {7, 1, 128, 128, true}, {3, 3, 2, 2, false}};
    for (const QkvShape& c : shapes) check_qkv_split(c);
}

} // namespace
