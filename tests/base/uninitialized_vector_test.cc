#include "common/base/uninitialized_vector.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace r2f {
namespace {

// What the fault index relies on: refilling a cleared buffer writes nothing before the caller
// does. The standard calls the new elements' values indeterminate; GCC and Clang leave the
// bytes as they were, which is what this looks at (std::vector zeroes them).
TEST(UninitializedVectorTest, ResizeAfterClearWritesNothing) {
  UninitializedVector<unsigned char> v(4096, 0xAB);
  const unsigned char* data = v.data();
  v.clear();
  v.resize(4096);
  ASSERT_EQ(v.data(), data) << "the capacity was not kept";
  for (unsigned char b : v) ASSERT_EQ(b, 0xAB);
  // std::vector zeroes them: the difference this type exists for.
  std::vector<unsigned char> zeroed(4096, 0xAB);
  zeroed.clear();
  zeroed.resize(4096);
  EXPECT_EQ(zeroed[100], 0);
}

struct WithInitializers {
  int32_t a = 7;
  int32_t b = -1;
};

TEST(UninitializedVectorTest, ValuesAndMemberInitializersAreStillWritten) {
  UninitializedVector<uint32_t> filled;
  filled.assign(100, 5u);
  for (uint32_t x : filled) EXPECT_EQ(x, 5u);
  filled.emplace_back(9u);
  EXPECT_EQ(filled.back(), 9u);

  UninitializedVector<WithInitializers> v;
  v.resize(3);
  for (const WithInitializers& w : v) {
    EXPECT_EQ(w.a, 7);
    EXPECT_EQ(w.b, -1);
  }
}

}  // namespace
}  // namespace r2f
