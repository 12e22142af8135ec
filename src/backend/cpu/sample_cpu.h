#pragma once
// The CPU backend's sample op (Backend::sample): the host's own SamplerChain (decode/sampler.h) over host tensors, so
// it is the twin every device sample kernel is held to, and the host Sampler's choice by construction.
#include "backend/backend.h"

namespace winnow::cpu {

void sample(const Tensor& logits, const SampleParams& p, const Tensor& token);

} // namespace winnow::cpu
