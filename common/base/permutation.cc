#include "common/base/permutation.h"

#include <cassert>
#include <numeric>
#include <utility>

#include "common/base/random.h"

namespace r2f {

uint64_t SplitMix64Rng::Next() { return SplitMix64(state_); }

uint32_t UniformBelow(SplitMix64Rng& rng, uint64_t bound) {
  assert(bound >= 1 && bound <= (uint64_t{1} << 32));
  uint64_t product = (rng.Next() >> 32) * bound;
  uint64_t low = product & 0xffffffffULL;
  if (low < bound) {
    // (2^32 - bound) mod bound, computed without 2^32 overflowing 32 bits.
    const uint64_t threshold = ((uint64_t{1} << 32) - bound) % bound;
    while (low < threshold) {
      product = (rng.Next() >> 32) * bound;
      low = product & 0xffffffffULL;
    }
  }
  return static_cast<uint32_t>(product >> 32);
}

std::vector<uint32_t> SeededPermutation(size_t n, uint64_t seed) {
  assert(static_cast<uint64_t>(n) <= (uint64_t{1} << 32));
  std::vector<uint32_t> perm(n);
  std::iota(perm.begin(), perm.end(), uint32_t{0});
  SplitMix64Rng rng(seed);
  for (size_t i = n; i > 1; --i) {
    const size_t j = UniformBelow(rng, i);  // i = (index of the last unshuffled slot) + 1
    std::swap(perm[i - 1], perm[j]);
  }
  return perm;
}

}  // namespace r2f
