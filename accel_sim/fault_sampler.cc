#include "accel_sim/fault_sampler.h"

#include <cmath>

namespace r2f::accel {
namespace {

// Distinguishes fault streams from any other use of the same seed.
constexpr uint64_t kFaultDomain = 0x52324620464c4950ULL;  // "R2F FLIP"

// Calls sink(position) for each flipped bit in [0, n_bits), in increasing order; 0 < ber < 1.
template <typename Sink>
void SampleSparse(Rng* rng, uint64_t n_bits, double ber, Sink sink) {
  // The number of clean bits before the next flip is geometric: P(skip = s) = (1-p)^s p, drawn
  // by inversion as floor(log(U) / log(1-p)) with U uniform in (0, 1].
  const double inv_log_keep = 1.0 / std::log1p(-ber);
  // Uniforms are drawn a block ahead: the generator's state then stays in registers while it
  // draws, instead of being saved and restored around every log() call. Draws a flip does not
  // use are discarded with the stream, which nothing reads afterwards, so the flips are the
  // same as with one draw at a time.
  constexpr int kBlock = 8;
  double uniform[kBlock];
  uint64_t pos = 0;
  while (true) {
    for (double& u : uniform) u = rng->UniformOpenClosed();
    for (const double u : uniform) {
      // t >= 0 (log(U) <= 0 < -inv_log_keep), and for an integer m, floor(t) >= m exactly when
      // t >= m: the end test needs no floor, and truncation is the floor below it. Compared in
      // double first: a skip beyond the end may exceed the range of uint64_t.
      const double t = std::log(u) * inv_log_keep;
      if (!(t < static_cast<double>(n_bits - pos))) return;
      pos += static_cast<uint64_t>(t);
      if (pos >= n_bits) return;  // guards the double-to-integer rounding at the boundary
      sink(pos);
      ++pos;
    }
  }
}

// The first bit in [pos, n_bits) whose draw falls under `threshold`, or n_bits; one draw per
// bit. A function of its own, 64-byte aligned: inlined into SampleFaultPlan, this 53-byte loop
// took 81 or 110 ms per ResNet18 batch depending on where the code around it placed it
// (identical instructions; a change to the sparse path's sink moved it).
[[gnu::noinline, gnu::aligned(64)]] uint64_t NextDenseFlip(Rng& rng, uint64_t pos, uint64_t n_bits,
                                                           uint64_t threshold) {
  for (; pos < n_bits; ++pos) {
    if (rng.Next() < threshold) return pos;
  }
  return n_bits;
}

template <typename Sink>
void SampleDense(Rng* rng, uint64_t n_bits, double ber, Sink sink) {
  // P(Next() < threshold) = threshold / 2^64 = ber (to 2^-64).
  const auto threshold = static_cast<uint64_t>(std::ldexp(ber, 64));
  for (uint64_t i = NextDenseFlip(*rng, 0, n_bits, threshold); i < n_bits;
       i = NextDenseFlip(*rng, i + 1, n_bits, threshold)) {
    sink(i);
  }
}

template <typename Sink>
void Sample(Rng* rng, uint64_t n_bits, double ber, Sampling sampling, Sink sink) {
  if (n_bits == 0 || !(ber > 0.0)) return;
  if (ber >= 1.0) {
    for (uint64_t i = 0; i < n_bits; ++i) sink(i);
  } else if (sampling == Sampling::kSparse) {
    SampleSparse(rng, n_bits, ber, sink);
  } else {
    SampleDense(rng, n_bits, ber, sink);
  }
}

}  // namespace

void SampleFlipPositions(Rng* rng, uint64_t n_bits, double ber, Sampling sampling,
                         std::vector<uint64_t>* positions) {
  Sample(rng, n_bits, ber, sampling, [&](uint64_t pos) { positions->push_back(pos); });
}

namespace {

// The hash of every key component but the site (shared by the four sites' streams).
uint64_t KeyHash(const FaultKey& key) {
  uint64_t h = HashCombine(kFaultDomain, key.seed);
  h = HashCombine(h, key.execution_tag);
  h = HashCombine(h, key.sample_id);
  h = HashCombine(h, key.node_id);
  return HashCombine(h, key.replica);
}

Rng SiteStream(uint64_t key_hash, FaultSite site) {
  return Rng(HashCombine(key_hash, static_cast<uint64_t>(site)));
}

}  // namespace

Rng FaultStream(const FaultKey& key, FaultSite site) { return SiteStream(KeyHash(key), site); }

void SampleFaultPlan(const FaultConfig& config, const FaultKey& key, const LayerExposure& exposure,
                     FaultPlan* plan) {
  plan->Clear();
  if (!(config.ber > 0.0)) return;
  const uint64_t key_hash = KeyHash(key);
  for (int s = 0; s < kNumFaultSites; ++s) {
    if (!config.sites[s]) continue;
    const auto site = static_cast<FaultSite>(s);
    Rng rng = SiteStream(key_hash, site);
    // Site widths are 8 and 32 bits: element and bit by shift and mask.
    const int log2_width = kSiteBitWidth[s] == 8 ? 3 : 5;
    const uint64_t bit_mask = static_cast<uint64_t>(kSiteBitWidth[s]) - 1;
    std::vector<BitFlip>& flips = plan->at(site);
    Sample(&rng, exposure.Bits(site), config.ber, config.sampling, [&](uint64_t pos) {
      // Field by field into the vector: GCC built a BitFlip temporary with two 32-bit stores
      // and copied it with one 64-bit load, which cannot be forwarded from them and stalled
      // every flip (a third of this function's time in perf).
      BitFlip& flip = flips.emplace_back();
      flip.element = static_cast<uint32_t>(pos >> log2_width);
      flip.bit = static_cast<uint32_t>(pos & bit_mask);
    });
  }
}

}  // namespace r2f::accel
