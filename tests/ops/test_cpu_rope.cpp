// The CPU backend's RoPE takes cos/sin from a per-position table instead of computing them per call; it must give
// exactly the bits of the reference loop (ref::rope_apply<float>), across table growth, a change of base, a change of
// frequency factors alone (Llama 3.1's: the table must be rebuilt), both conventions, a partial rotation, and batches
// large enough to be split among threads.
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cpu/reference_ops.h"

namespace winnow {
namespace {

TEST(CpuRope, BitIdenticalToTheReferenceLoop) {
    auto be = make_cpu_backend(2, CpuDotMode::f32);
    struct Case { int rows, heads, hd, rope_dim, pos0; float base; RopeStyle style; int factors = 0; };
    // positions grow (the table extends), then the base changes (the table is rebuilt), then a short one reuses it;
    // then the same base and dims with factors, other factors, and none again (each rebuilds the table)
    const Case cases[] = {{600, 9, 64, 64, 0, 10000.0f, RopeStyle::adjacent_pairs}, {300, 9, 64, 64, 5000, 10000.0f, RopeStyle::rotate_half},
                          {1, 3, 64, 64, 5299, 10000.0f, RopeStyle::adjacent_pairs}, {40, 5, 80, 32, 37, 500000.0f, RopeStyle::rotate_half},
                          {7, 5, 80, 32, 2, 500000.0f, RopeStyle::adjacent_pairs},   {7, 5, 80, 32, 2, 500000.0f, RopeStyle::adjacent_pairs, 1},
                          {7, 5, 80, 32, 2, 500000.0f, RopeStyle::adjacent_pairs, 2}, {7, 5, 80, 32, 2, 500000.0f, RopeStyle::adjacent_pairs}};
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (const Case& c : cases) {
        const int64_t cols = static_cast<int64_t>(c.heads) * c.hd;
        std::vector<float> x(static_cast<size_t>(c.rows * cols));
        for (auto& v : x) v = nd(rng);
        std::vector<float> want = x, got(x.size()), factors;
        for (int i = 0; c.factors && i < c.rope_dim / 2; ++i) factors.push_back(i < c.rope_dim / 4 ? 1.0f : 2.0f * c.factors + i);
        ref::rope_apply<float>(want.data(), 1, c.rows, c.heads, c.hd, c.rope_dim, c.base, c.style, false, c.pos0, factors.empty() ? nullptr : factors.data());
        const Tensor t = be->alloc(GgmlType::F32, c.rows, cols);
        be->upload(x.data(), t);
        Tensor ft;
        if (!factors.empty()) {
            ft = be->alloc(GgmlType::F32, 1, static_cast<int64_t>(factors.size()));
            be->upload(factors.data(), ft);
        }
        RopeParams p;
        p.n_heads = c.heads, p.head_dim = c.hd, p.rope_dim = c.rope_dim, p.pos0 = c.pos0, p.base = c.base, p.style = c.style;
        p.freq_factors = factors.empty() ? nullptr : &ft;
        be->rope(t, p);
        be->download(t, got.data());
        for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(got[i], want[i]) << "rows " << c.rows << " pos0 " << c.pos0 << " at " << i;
    }
}

} // namespace
} // namespace winnow
