#include "common/base/malloc_policy.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace r2f {
namespace {

// A 2 MiB block, above glibc's default mmap threshold: with the policy it comes from the heap
// (no mapped block) and stays in the process when freed.
TEST(MallocPolicy, KeepsBlocksOfMegabytesInTheHeap) {
  ASSERT_TRUE(KeepFreedMemoryForReuse());
  const size_t mapped_before = mallinfo2().hblks;
  void* block = std::malloc(2 << 20);
  ASSERT_NE(block, nullptr);
  std::memset(block, 1, 2 << 20);
  EXPECT_EQ(mallinfo2().hblks, mapped_before) << "the block was mapped, not taken from the heap";
  std::free(block);
  EXPECT_GE(mallinfo2().fordblks, size_t{2} << 20) << "the freed block went back to the kernel";
}

}  // namespace
}  // namespace r2f
