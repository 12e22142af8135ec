#pragma once
// The check both heads' debiased-normalizer tests make (FaithfulOptions / FastOptions::debiased_normalizer): only
// the normalizer's sum changes, each estimated arm counting as exp(mu_i - var_i / 2). With the same seed the plain and
// debiased runs read the same samples and pick the same arm; the debiased log-normalizer is strictly lower while some
// arm is still estimated (a sign slip, + var / 2, fails) and equal once every arm is read in full.
#include <cstdio>

#include <gtest/gtest.h>

#include "planted_instances.h"

namespace winnow::test {

// run(instance, debiased, fudge_norm): the head's AdaptiveResult for that instance with a fixed seed. all_exact: an
// instance whose every arm that head reads in full.
template <class Run>
void expect_debiasing_lowers_only_the_estimated_normalizer(Run run, const Instance& all_exact) {
    const Instance noisy = flat(2048, 512, 7001, 0, 1.0f, 4.0f);
    const auto plain = run(noisy, false, 1e-3), debiased = run(noisy, true, 1e-3); // few normalizer reads
    EXPECT_EQ(debiased.cost.samples, plain.cost.samples);
    EXPECT_EQ(debiased.head.top, plain.head.top);
    EXPECT_LT(debiased.head.log_norm, plain.head.log_norm - 1e-3) << "some arms are still estimated here";
    EXPECT_GT(debiased.head.p_top, plain.head.p_top);
    std::printf("log normalizer: plain %.6f, debiased %.6f\n", plain.head.log_norm, debiased.head.log_norm);

    const auto plain_exact = run(all_exact, false, 1.0), debiased_exact = run(all_exact, true, 1.0);
    EXPECT_EQ(debiased_exact.head.log_norm, plain_exact.head.log_norm);
    EXPECT_EQ(debiased_exact.head.p_top, plain_exact.head.p_top);
}

} // namespace winnow::test
