// Backend::rope_store_kv's default is the four ops Forward issued before the op existed, in that order and with those
// arguments: rope(q), rope(k) with the KV heads, then the k and v cache writes (copy_rows at the host row, or
// copy_rows_at with the device row). The CPU backend runs the default, so its decoder's bits are the old ones (the
// op harness also compares every backend's op with the four ops bit for bit: rope_store_kv cases).
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "forwarding_cpu.h"

namespace {

using namespace winnow;

// The CPU backend, logging the rope and cache-write ops it is asked for (rope_store_kv not forwarded: Backend's default
// runs, through these ops).
class LoggingCpu final : public test::ForwardingCpu {
public:
    LoggingCpu() : ForwardingCpu(false) {}
    std::vector<std::string> log;
    const Tensor *q = nullptr, *k = nullptr, *v = nullptr, *k_cache = nullptr, *v_cache = nullptr, *row = nullptr;

    const char* name() const override { return "cpu-logging"; }
    void rope(const Tensor& x, const RopeParams& p) override {
        log.push_back("rope " + which(x) + " heads " + std::to_string(p.n_heads) + " hd " + std::to_string(p.head_dim) + " dims " +
                      std::to_string(p.rope_dim) + " pos0 " + std::to_string(p.pos0) + " base " + std::to_string(p.base) + " style " +
                      std::to_string(static_cast<int>(p.style)) + (p.pos ? " pos " + which(*p.pos) : std::string()));
        ForwardingCpu::rope(x, p);
    }
    void copy_rows(const Tensor& s, const Tensor& d, int64_t r) override {
        log.push_back("copy_rows " + which(s) + " -> " + which(d) + " at " + std::to_string(r));
        ForwardingCpu::copy_rows(s, d, r);
    }
    void copy_rows_at(const Tensor& s, const Tensor& d, const Tensor& r) override {
        log.push_back("copy_rows_at " + which(s) + " -> " + which(d) + " at " + which(r));
        cpu().copy_rows_at(s, d, r);
    }

private:
    std::string which(const Tensor& t) const {
        const std::pair<const Tensor*, const char*> known[] = {{q, "q"},           {k, "k"},       {v, "v"},
                                                               {k_cache, "k_cache"}, {v_cache, "v_cache"}, {row, "row"}};
        for (const auto& [tensor, name] : known)
            if (tensor && tensor->raw() == t.raw()) return name;
        return "?";
    }
};

TEST(RopeStoreKvDefault, IsTheFourOpsInOrder) {
    for (bool device_row : {false, true}) {
        LoggingCpu be;
        const Tensor q = be.alloc(GgmlType::F32, 2, 9 * 64), k = be.alloc(GgmlType::F32, 2, 3 * 64), v = be.alloc(GgmlType::F32, 2, 3 * 64);
        const Tensor kc = be.alloc(GgmlType::F16, 16, 3 * 64), vc = be.alloc(GgmlType::F16, 16, 3 * 64), row = be.alloc(GgmlType::I32, 1, 1);
        const int32_t at = 6;
        be.upload(&at, row);
        be.q = &q, be.k = &k, be.v = &v, be.k_cache = &kc, be.v_cache = &vc, be.row = &row;
        const RopeParams p{9, 64, 32, 5, 100000.0f, RopeStyle::rotate_half, device_row ? &row : nullptr};
        be.rope_store_kv(q, k, v, p, 3, kc, vc, 5, device_row ? &row : nullptr);
        const std::string rope = " hd 64 dims 32 pos0 5 base " + std::to_string(100000.0f) + " style " +
                                 std::to_string(static_cast<int>(RopeStyle::rotate_half)) + (device_row ? " pos row" : "");
        std::vector<std::string> want = {"rope q heads 9" + rope, "rope k heads 3" + rope};
        if (device_row) want.insert(want.end(), {"copy_rows_at k -> k_cache at row", "copy_rows_at v -> v_cache at row"});
        else want.insert(want.end(), {"copy_rows k -> k_cache at 5", "copy_rows v -> v_cache at 5"});
        EXPECT_EQ(be.log, want) << (device_row ? "device row" : "host row");
    }
}

} // namespace
