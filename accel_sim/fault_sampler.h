// Drawing soft errors: which bits of a layer execution flip (docs/accel_sim.md, "Sampling").
#pragma once

#include <cstdint>
#include <vector>

#include "accel_sim/accelerator.h"
#include "accel_sim/fault_plan.h"
#include "common/base/random.h"

namespace r2f::accel {

// Appends to *positions the indices in [0, n_bits) of the bits that flip, each independently
// with probability `ber`, in increasing order. kSparse jumps from flip to flip with geometric
// skips (cost O(flips + 1)); kDense draws one Bernoulli per bit (cost O(n_bits)). Both draw
// from the same distribution (not the same values). Requires 0 <= ber <= 1. kSparse draws
// from *rng in blocks and may leave it up to 7 draws past the last one it used: give each
// call a stream of its own (FaultStream) when the positions must not depend on what ran before.
void SampleFlipPositions(Rng* rng, uint64_t n_bits, double ber, Sampling sampling,
                         std::vector<uint64_t>* positions);

// The random stream of one (key, site): independent of every other key and site.
Rng FaultStream(const FaultKey& key, FaultSite site);

// Fills *plan (cleared first) with the flips of one execution: for every enabled site, the
// site's bits of `exposure` flip independently with probability config.ber.
void SampleFaultPlan(const FaultConfig& config, const FaultKey& key, const LayerExposure& exposure,
                     FaultPlan* plan);

}  // namespace r2f::accel
