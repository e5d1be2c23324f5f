// Small, splittable random number generation for fault injection.
//
// Every fault draw is keyed by (device seed, execution tag, sample id, layer node id, replica,
// site): the key is hashed with SplitMix64 into the seed of a private xoshiro256** stream. Two
// executions with the same key see the same flips, whatever else ran before them, on whichever
// thread, in whatever batch: this is what makes faulty runs reproducible and independent of
// batching order. Both generators are the published public-domain algorithms (Steele et al.;
// Blackman & Vigna), written out here so results do not depend on a standard library's choice.
#pragma once

#include <cstdint>

namespace r2f::accel {

// One step of SplitMix64: advances *state and returns a well-mixed 64-bit value.
inline uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Folds one more key component into a running hash. Not commutative, so (a, b) != (b, a).
inline uint64_t HashCombine(uint64_t hash, uint64_t value) {
  uint64_t state = hash ^ (value * 0xd1b54a32d192ed03ULL);
  uint64_t mixed = SplitMix64(&state);
  return SplitMix64(&mixed);
}

// xoshiro256**: fast, 256-bit state, passes BigCrush; seeded from a 64-bit key via SplitMix64
// (so the state is never all zero).
class Xoshiro256 {
 public:
  explicit Xoshiro256(uint64_t key) {
    uint64_t sm = key;
    for (uint64_t& word : s_) word = SplitMix64(&sm);
  }

  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  // Uniform in (0, 1]: never 0, so log() of it is finite.
  double UniformOpenClosed() { return static_cast<double>((Next() >> 11) + 1) * 0x1.0p-53; }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace r2f::accel
