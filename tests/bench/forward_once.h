// One batch through the simulated accelerator in one of the benchmarked modes, shared by the
// ratio benchmarks (accel_bench.cc) and the per-network table (network_bench.cc).
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "accel_sim/accelerator.h"
#include "common/base/status.h"

namespace r2f::bench {

enum class Mode {
  kClean,          // Infer at BER 0
  kSparse,         // Infer at BER 1e-4, all sites, sparse sampling
  kDense,          // the same with Sampling::kDense
  kTraining,       // RunTraining at BER 1e-4 (deployed chain + LW-TMR reference chain)
  kTrainingExact,  // RunTraining at BER 1e-4, the exact method's layer-local reference
  kLayerWise,      // Infer at BER 1e-4 with LW-TMR
  kNetworkWise,    // Infer at BER 1e-4 with NW-TMR
};

// Runs `pixels` (a batch of `batch` images) once with execution tag `tag` (a new tag, new soft
// errors); returns the flips drawn.
Result<uint64_t> ForwardOnce(accel::Accelerator& device, const std::vector<uint8_t>& pixels,
                             int batch, Mode mode, uint64_t tag);

// The body of a forward benchmark: one warm-up batch (workspace buffers, first touch) outside
// the timing, then one ForwardOnce per iteration with a fresh tag; counters items_per_second
// (images) and flips_per_batch.
void TimeForward(benchmark::State& state, accel::Accelerator& device,
                 const std::vector<uint8_t>& pixels, int batch, Mode mode);

}  // namespace r2f::bench
