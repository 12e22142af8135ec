// Dot product of one stored weight row with an fp32 activation, per type, at SmolLM2's widths (576, 1536).
// Reports bytes of weights read per second, the quantity that bounds batch-1 decode.
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include "backend/cpu/vec_dot.h"
#include "io/quant.h"

namespace {

using namespace winnow;

void BM_VecDot(benchmark::State& state, GgmlType type) {
    const size_t n = static_cast<size_t>(state.range(0));
    const int rows = 256; // several rows so the weights come from cache like a real matrix slice
    std::mt19937 rng(1);
    std::normal_distribution<float> nd;
    std::vector<float> w(n * rows), x(n);
    for (auto& v : w) v = nd(rng);
    for (auto& v : x) v = nd(rng);
    const size_t row_bytes = ggml_row_bytes(type, n);
    std::vector<uint8_t> stored(row_bytes * rows);
    for (int r = 0; r < rows; ++r) quantize_row_ref(type, w.data() + r * n, stored.data() + r * row_bytes, n);
    cpu::PreparedActivation px;
    cpu::prepare_activation(type, x.data(), n, px);
    for (auto _ : state)
        for (int r = 0; r < rows; ++r) benchmark::DoNotOptimize(cpu::vec_dot(type, stored.data() + r * row_bytes, px, n));
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * rows * row_bytes);
}

BENCHMARK_CAPTURE(BM_VecDot, F32, GgmlType::F32)->Arg(576)->Arg(1536);
BENCHMARK_CAPTURE(BM_VecDot, F16, GgmlType::F16)->Arg(576)->Arg(1536);
BENCHMARK_CAPTURE(BM_VecDot, BF16, GgmlType::BF16)->Arg(576)->Arg(1536);
BENCHMARK_CAPTURE(BM_VecDot, Q8_0, GgmlType::Q8_0)->Arg(576)->Arg(1536);
BENCHMARK_CAPTURE(BM_VecDot, Q4_0, GgmlType::Q4_0)->Arg(576)->Arg(1536);
BENCHMARK_CAPTURE(BM_VecDot, Q4_1, GgmlType::Q4_1)->Arg(576)->Arg(1536);

} // namespace

BENCHMARK_MAIN();
