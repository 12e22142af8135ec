#include <gtest/gtest.h>

#include "io/ggml_type.h"

TEST(GgmlType, BlockGeometryMatchesGgml) {
    EXPECT_EQ(winnow::ggml_type_traits(3)->type_size, 20u);
    EXPECT_FALSE(winnow::ggml_type_traits(4).has_value()); // Q4_2 was retired
}
