#include "backend/cpu/sample_cpu.h"

#include <algorithm>
#include <cstring>
#include <span>

#include "decode/sampler.h"

namespace winnow::cpu {

void sample(const Tensor& logits, const SampleParams& p, const Tensor& token) {
    const int64_t n = check_sample_args(logits, p, token, Device::cpu);
    // The length comes from the tensor when one is given (a recorded step), clamped to the history as a device
    // kernel clamps it, so a stale length reads a shorter window instead of past the buffer.
    int n_history = resolve_position(p.n_history_at, p.n_history);
    const int capacity = p.history ? static_cast<int>(p.history->rows()) : 0;
    n_history = std::clamp(n_history, 0, capacity);
    const std::span<const int32_t> history(p.history ? p.history->data<int32_t>() : nullptr, static_cast<size_t>(n_history));
    double u = 0.0;
    if (p.chain.temperature > 0.0f) std::memcpy(&u, p.u->raw(), sizeof u);
    SamplerChain chain(p.chain);
    const int32_t id = chain.run(std::span<const float>(logits.f32(), static_cast<size_t>(n)), history, u);
    *token.data<int32_t>() = id;
    if (p.append && n_history < capacity) p.history->data<int32_t>()[n_history] = id;
}

} // namespace winnow::cpu
