// Small, fully specified random number generators. R2F never uses <random> distributions for
// anything that must be reproducible: their algorithms are implementation-defined, and a seed
// must give the same faults, shuffles and augmentations on every machine.
#pragma once

#include <cstdint>
#include <initializer_list>

namespace r2f {

// SplitMix64 (Steele, Lea, Flood 2014): a 64-bit mixer, used to derive seeds and keys.
inline uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Mixes several words into one key (order-sensitive).
inline uint64_t MixKey(std::initializer_list<uint64_t> words) {
  uint64_t state = 0x6A09E667F3BCC909ull;
  uint64_t key = 0;
  for (uint64_t w : words) {
    state ^= w + 0x9E3779B97F4A7C15ull + (state << 6) + (state >> 2);
    key = SplitMix64(state);
  }
  return key;
}

// Folds one more key component into a running hash, fully mixed at every step (two SplitMix64
// rounds), so that keys differing in any component give unrelated values. Not commutative:
// (a, b) != (b, a). Used for keyed streams: Rng(HashCombine(HashCombine(domain, a), b)) is a
// private generator for the key (a, b), independent of every other key, whatever ran before it
// or on which thread (accel_sim's fault streams: seed, tag, sample, layer, replica, site).
// Its outputs are pinned by tests/accel_sim/fault_test.cc (every simulated fault depends on them).
inline uint64_t HashCombine(uint64_t hash, uint64_t value) {
  uint64_t state = hash ^ (value * 0xD1B54A32D192ED03ull);
  uint64_t mixed = SplitMix64(state);
  return SplitMix64(mixed);
}

// xoshiro256** (Blackman, Vigna 2018), seeded through SplitMix64.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (uint64_t& s : s_) s = SplitMix64(seed);
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
  // Uniform in [0, 1) with 53 random bits.
  double UniformDouble() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Uniform in (0, 1] with 53 random bits: never 0, so log() of it is finite (inversion
  // sampling of geometric skips).
  double UniformOpenClosed() { return static_cast<double>((Next() >> 11) + 1) * 0x1.0p-53; }
  // Uniform integer in [0, bound), unbiased (Lemire's multiply-and-reject), bound > 0.
  uint64_t Below(uint64_t bound) {
    unsigned __int128 m = static_cast<unsigned __int128>(Next()) * bound;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < bound) {
      const uint64_t threshold = (0 - bound) % bound;
      while (low < threshold) {
        m = static_cast<unsigned __int128>(Next()) * bound;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace r2f
