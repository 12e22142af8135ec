#pragma once
// Central finite differences of a trainer's loss with respect to single parameters (double precision).
#include <cmath>
#include <cstdint>
#include <vector>

#include "train/transformer.h"

namespace winnow::test {

// (L(p + h) - L(p - h)) / 2h for parameter `index`, the loss being the mean cross-entropy of one batch.
inline double numeric_gradient(train::Transformer<double>& m, size_t index, const std::vector<int32_t>& tokens, const std::vector<int32_t>& targets,
                               int B, int T, double h = 1e-6) {
    double& x = m.params()[index];
    const double keep = x;
    x = keep + h;
    const double up = m.step(tokens.data(), targets.data(), B, T, false);
    x = keep - h;
    const double down = m.step(tokens.data(), targets.data(), B, T, false);
    x = keep;
    return (up - down) / (2 * h);
}

} // namespace winnow::test
