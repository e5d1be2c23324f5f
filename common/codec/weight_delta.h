// Weight deltas: deploying a retrained model by sending only the int8 weights (and biases) that
// changed since the version the device already holds (docs/link_and_codec.md; ours, the paper sends
// whole models).
//
// A delta is valid only between models that differ in weights, biases, version and description:
// same graph, same fixed-point formats, same input table. That is what retraining produces
// (scales are calibrated once and kept fixed), so every retraining step can go as a delta.
// Each changed layer's weights travel as one layer of common/codec/increment_codec.h against the
// base weights, (new - base) mod 256 (normally sparse), so the downlink reuses the uplink's codec.
// The device checks base_version before applying and the CRC-32 of all weights after.
#pragma once

#include <cstdint>

#include "common/base/status.h"
#include "r2f.pb.h"

namespace r2f {

// CRC-32 over every layer's int8 weights, concatenated in layer order (WeightDelta.weights_crc32).
uint32_t WeightsCrc32(const pb::QuantizedModel& model);

// OK when `target` can be expressed as a delta against `base`; otherwise InvalidArgument naming
// the first difference outside weights, biases, version and description.
Status CheckDeltaCompatible(const pb::QuantizedModel& base, const pb::QuantizedModel& target);

// The delta that turns `base` into `target` (CheckDeltaCompatible must hold, and the versions
// must differ). Unchanged layers are left out.
Result<pb::WeightDelta> MakeWeightDelta(const pb::QuantizedModel& base,
                                        const pb::QuantizedModel& target);

// Applies `delta` to `base`. InvalidArgument when delta.base_version is not base's version, a
// layer is unknown or listed twice, or a bias has the wrong length; Corruption when an encoded
// layer does not decode to the layer's size or the resulting weights fail weights_crc32. Errors
// name the layer. `base` is not modified.
Result<pb::QuantizedModel> ApplyWeightDelta(const pb::QuantizedModel& base,
                                            const pb::WeightDelta& delta);

}  // namespace r2f
