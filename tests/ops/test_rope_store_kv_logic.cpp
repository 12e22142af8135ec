// The fused rope_store_kv kernel's work split (backend/cuda/rope_store_kv_logic.cuh) run on the host: for each shape,
// every thread's item, and what it would touch. Every rotated dim of q and k must be rotated by exactly one thread,
// the dims rope leaves alone by none, and every k and v element cached by exactly one thread (the one that rotated
// it, for a rotated k dim). On a machine without a GPU this is what checks the kernel's indexing; the op harness
// (rope_store_kv cases) compares the CUDA build with the four ops and the double reference on the GPU machine.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backend/cuda/rope_store_kv_logic.cuh"

namespace {

using namespace winnow::cuda;

struct StoreShape {
    int rows, n_head, n_head_kv, head_dim, rope_dim;
    bool adjacent;
};

void check_store_split(const StoreShape& c) {
    SCOPED_TRACE("rows " + std::to_string(c.rows) + ", heads " + std::to_string(c.n_head) + "/" + std::to_string(c.n_head_kv) + " of " +
                 std::to_string(c.head_dim) + ", rope_dim " + std::to_string(c.rope_dim) + (c.adjacent ? ", adjacent" : ", rotate-half"));
    const RopeStoreKvShape s{c.n_head, c.n_head_kv, c.head_dim, c.rope_dim / 2};
    const int64_t qd = static_cast<int64_t>(c.n_head) * c.head_dim, kvd = static_cast<int64_t>(c.n_head_kv) * c.head_dim;
    // per element: times rotated (q, k) and times cached (k, v)
    std::vector<int> q_rot(c.rows * qd, 0), k_rot(c.rows * kvd, 0), k_cached(c.rows * kvd, 0), v_cached(c.rows * kvd, 0);
    std::vector<int> k_rot_by(c.rows * kvd, -1), k_cached_by(c.rows * kvd, -1); // which thread
    const int64_t n = c.rows * rope_store_kv_items_per_row(s);
    for (int64_t idx = 0; idx < n; ++idx) {
        const RopeStoreKvItem it = rope_store_kv_item(s, idx);
        ASSERT_GE(it.row, 0);
        ASSERT_LT(it.row, c.rows);
        const bool pair = it.kind == RopeStoreKvKind::q_pair || it.kind == RopeStoreKvKind::k_pair;
        ASSERT_GE(it.head, 0);
        ASSERT_LT(it.head, it.kind == RopeStoreKvKind::q_pair ? c.n_head : c.n_head_kv);
        ASSERT_GE(it.index, 0);
        ASSERT_LT(it.index, pair ? s.half : c.head_dim);
        const int64_t head_at = it.row * (it.kind == RopeStoreKvKind::q_pair ? qd : kvd) + static_cast<int64_t>(it.head) * c.head_dim;
        switch (it.kind) {
        case RopeStoreKvKind::q_pair:
        case RopeStoreKvKind::k_pair: {
            const RopePairDims d = rope_pair_dims(it.index, s.half, c.adjacent);
            for (int dim : {d.a, d.b}) {
                ASSERT_LT(dim, 2 * s.half) << "a pair dim outside the rotated dims";
                if (it.kind == RopeStoreKvKind::q_pair) {
                    ++q_rot[head_at + dim];
                } else {
                    ++k_rot[head_at + dim], ++k_cached[head_at + dim];
                    k_rot_by[head_at + dim] = k_cached_by[head_at + dim] = static_cast<int>(idx);
                }
            }
            break;
        }
        case RopeStoreKvKind::k_dim:
            ASSERT_GE(it.index, 2 * s.half) << "a rotated k dim cached without its rotation";
            ++k_cached[head_at + it.index];
            k_cached_by[head_at + it.index] = static_cast<int>(idx);
            break;
        case RopeStoreKvKind::v_dim: ++v_cached[head_at + it.index]; break;
        }
    }
    for (int64_t e = 0; e < c.rows * qd; ++e) EXPECT_EQ(q_rot[e], e % c.head_dim < 2 * s.half ? 1 : 0) << "q element " << e;
    for (int64_t e = 0; e < c.rows * kvd; ++e) {
        EXPECT_EQ(k_rot[e], e % c.head_dim < 2 * s.half ? 1 : 0) << "k element " << e;
        EXPECT_EQ(k_cached[e], 1) << "k element " << e;
        EXPECT_EQ(v_cached[e], 1) << "v element " << e;
        if (k_rot[e] == 1) {
            EXPECT_EQ(k_rot_by[e], k_cached_by[e]) << "k element " << e << " cached by another thread than rotated it";
        }
    }
}

TEST(RopeStoreKvLogic, EveryElementHasExactlyOneThread) {
    const StoreShape shapes[] = {
        {1, 9, 3, 64, 64, false},  {1, 9, 3, 64, 64, true},    // SmolLM2's decode step, both conventions
        {7, 9, 3, 64, 64, false},  {5, 9, 3, 64, 64, true},    // prefill rows
        {3, 5, 5, 80, 32, true},   {2, 4, 2, 80, 32, false},   // a partial rotation
        {2, 3, 1, 10, 7, false},   {2, 3, 1, 10, 7, true},     // an odd rope_dim: its last dim is not rotated
        {2, 12, 12, 64, 0, false},                             // no rotation (gpt2): caching only
        {1, 2, 2, 4, 4, true},     {4, 6, 3, 2, 2, false},     // tiny heads
    };
    for (const StoreShape& c : shapes) check_store_split(c);
}

// The pair dims are ref::rope_rotate_pair's: adjacent (2i, 2i + 1), rotate-half (i, i + half).
TEST(RopeStoreKvLogic, PairDimsFollowTheReference) {
    for (int half : {1, 16, 32})
        for (int i = 0; i < half; ++i) {
            const RopePairDims adj = rope_pair_dims(i, half, true), rot = rope_pair_dims(i, half, false);
            EXPECT_EQ(adj.a, 2 * i);
            EXPECT_EQ(adj.b, 2 * i + 1);
            EXPECT_EQ(rot.a, i);
            EXPECT_EQ(rot.b, i + half);
        }
}

} // namespace
