// Runs every op case on every backend as its own test (backend x op x type x shape), and checks that the cases
// cover every op the decoder calls.
#include <cctype>
#include <cstdio>
#include <ostream>
#include <set>

#include <gtest/gtest.h>

#include "op_harness.h"

#ifdef WINNOW_HAVE_CUDA
#include "backend/cuda/device.h"
#endif

namespace winnow::test {

std::vector<BackendFactory> backend_factories() {
    std::vector<BackendFactory> f{
        {"cpu_f32", [] { return make_cpu_backend(2, CpuDotMode::f32); }, false},
        {"cpu_q8", [] { return make_cpu_backend(2, CpuDotMode::q8); }, true},
    };
#ifdef WINNOW_HAVE_CUDA
    // The CUDA backend joins with one factory; without a GPU its cases are listed and skip with the reason.
    f.push_back({"cuda", [] { return make_backend({.device = Device::cuda}); }, false, [] {
                     return cuda::device_count() > 0 ? std::string() : std::string("no CUDA device on this machine");
                 }});
#endif
    return f;
}

namespace {

struct Param {
    BackendFactory backend;
    OpCase op;
};

std::vector<Param> all_params() {
    std::vector<Param> p;
    for (const auto& b : backend_factories())
        for (const auto& c : op_cases()) p.push_back({b, c});
    return p;
}

// Names the case in gtest's and ctest's listings instead of dumping its bytes.
void PrintTo(const Param& p, std::ostream* os) { *os << p.backend.name << " " << p.op.name; }

class BackendOps : public ::testing::TestWithParam<Param> {};

TEST_P(BackendOps, MatchesDoubleReference) {
    const Param& p = GetParam();
    if (const std::string why = p.backend.unavailable(); !why.empty()) GTEST_SKIP() << p.backend.name << ": " << why;
    auto be = p.backend.make();
    if (!be->supports(p.op.op, p.op.type)) GTEST_SKIP() << be->name() << " does not support " << to_string(p.op.op) << " on " << ggml_type_name(p.op.type);
    const OpResult r = p.op.run(*be);
    const double tol = p.backend.rounds_activations ? p.op.tol_rounded : p.op.tol;
    std::printf("%s on %s: NMSE %.3g (tolerance %.3g), max |error| %.3g, %zu values\n", p.op.name.c_str(), be->name(), r.nmse, tol, r.max_abs, r.compared);
    EXPECT_GT(r.compared, 0u) << "the case compared nothing";
    EXPECT_LE(r.nmse, tol);
    EXPECT_TRUE(r.exact_ids) << "ids (top-k) or bits (summaries; rope_store_kv against its four ops) differ";
}

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
    std::string s = info.param.backend.name + "__" + info.param.op.name;
    for (char& c : s)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    return s;
}

INSTANTIATE_TEST_SUITE_P(All, BackendOps, ::testing::ValuesIn(all_params()), param_name);

// Every op of the Backend interface (all of them are called by the decoder) has at least one case, and the CPU, the
// reference backend, runs every case: each weight type, and the F32, F16 and BF16 KV caches (a case it declined
// would only skip).
TEST(BackendOpsCoverage, EveryDecoderOpHasACase) {
    std::set<Op> covered;
    auto cpu = make_cpu_backend(1);
    for (const auto& c : op_cases()) {
        EXPECT_TRUE(cpu->supports(c.op, c.type)) << c.name << " is not run on the CPU";
        covered.insert(c.op);
    }
    std::printf("ops covered by the harness:");
    for (Op op : kAllOps) {
        std::printf(" %s", to_string(op));
        EXPECT_TRUE(covered.count(op)) << to_string(op) << " has no harness case";
    }
    std::printf("\n%zu cases per backend, %zu backends\n", op_cases().size(), backend_factories().size());
}

} // namespace

} // namespace winnow::test
