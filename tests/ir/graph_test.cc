// Shape arithmetic of the graph IR against hostile dims (a deployModel carries the graph).
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "common/ir/graph.h"

namespace r2f {
namespace {

pb::Shape Shape(std::initializer_list<uint32_t> dims) {
  pb::Shape s;
  for (uint32_t d : dims) s.add_dims(d);
  return s;
}

TEST(GraphTest, NumElementsSaturatesInsteadOfWrapping) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(NumElements(Shape({2, 3, 4})), 24);
  EXPECT_EQ(NumElements(Shape({})), 1);
  // 2^31 * 2^31 * 4 = 2^64: wrapped, it was 0 elements, and a buffer of 0 bytes.
  EXPECT_EQ(NumElements(Shape({1u << 31, 1u << 31, 4})), kMax);
  EXPECT_EQ(NumElements(Shape({UINT32_MAX, UINT32_MAX, UINT32_MAX})), kMax);
  EXPECT_EQ(NumElements(Shape({UINT32_MAX, UINT32_MAX})), kMax);  // 2^64 - 2^33 + 1
  EXPECT_EQ(NumElements(Shape({UINT32_MAX, 1u << 31})), int64_t{UINT32_MAX} << 31);  // fits
  EXPECT_EQ(NumElements(Shape({UINT32_MAX, UINT32_MAX, 2, 0})), 0);
  EXPECT_EQ(NumElements(Shape({0, UINT32_MAX, UINT32_MAX, 2})), 0);
}

}  // namespace
}  // namespace r2f
