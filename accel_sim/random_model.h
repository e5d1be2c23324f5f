// Quantized models with random parameters, for tests and benchmarks of the device side.
//
// The values follow the shape of a real export (docs/quantization.md) without any training:
// full-range int8 weights (-128 included), per-channel weight fracs, biases and activation
// fracs chosen so that requantised outputs spread over the int8 range instead of saturating,
// pass-through nodes inheriting their input's frac and concat taking the minimum.
#pragma once

#include <cstdint>

#include "common/base/status.h"
#include "r2f.pb.h"

namespace r2f::accel {

// Builds a QuantizedModel for `graph` (a float training graph is fine: batch_norm flags are
// cleared as if BN had been folded). Deterministic in `seed`.
Result<pb::QuantizedModel> MakeRandomQuantizedModel(const pb::Graph& graph, uint64_t seed);

}  // namespace r2f::accel
