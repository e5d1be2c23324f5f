// Seeded shuffling that gives the same order on every platform and library version.
//
// std::shuffle and std::uniform_int_distribution are implementation-defined, so the order of
// training samples (and with it every reproduced experiment) could change with the standard
// library. Everything here is specified down to the bit: SplitMix64 as the generator,
// Lemire's multiply-shift with rejection for unbiased bounded integers, and Fisher-Yates
// (Durstenfeld's in-place form, walking down from the last element).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace r2f {

// The SplitMix64 generator (Steele, Lea and Flood, 2014): a 64-bit counter advanced by the
// golden-ratio increment, output through a fixed mixing function. Not cryptographic; good for
// shuffling. Each step is r2f::SplitMix64 of common/base/random.h; the reference outputs and the
// golden permutations pinned in tests/base/permutation_test.cc guard against any change there.
class SplitMix64Rng {
 public:
  explicit SplitMix64Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next();

 private:
  uint64_t state_;
};

// A uniformly distributed integer in [0, bound), 1 <= bound <= 2^32, from the high 32 bits of
// the generator's outputs (Lemire 2019, "Fast random integer generation in an interval"): the
// product of a 32-bit draw and `bound` is kept in 64 bits, and the few draws whose low half
// falls below (2^32 - bound) mod bound are rejected so that every result is equally likely.
uint32_t UniformBelow(SplitMix64Rng& rng, uint64_t bound);

// A permutation of 0..n-1 determined by `seed` alone, n <= 2^32.
// For i = n-1 down to 1: j = UniformBelow(rng, i + 1); swap(perm[i], perm[j]).
std::vector<uint32_t> SeededPermutation(size_t n, uint64_t seed);

}  // namespace r2f
