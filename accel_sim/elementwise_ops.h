// The non-MAC operators, run on the device's reliable general-purpose processor in exact
// integer arithmetic (docs/quantization.md, table "Operators"): input quantisation, residual
// add, max / average / global average pooling, concat, channel shuffle, flatten and slice.
//
// Buffers hold a whole batch: `batch` images back to back, each in the node's per-image layout
// (CHW or F). No fault is ever injected here.
#pragma once

#include <cstdint>
#include <vector>

#include "accel_sim/compiled_model.h"

namespace r2f::accel {

// Input node: pixel p of channel c becomes lut[c * 256 + p]. `pixels` is NCHW uint8.
void QuantizeInput(const std::vector<int8_t>& lut, const NodeInfo& input, int batch,
                   const uint8_t* pixels, int8_t* out);

// Any non-MAC, non-input node. inputs[j] is the batch buffer of node.inputs[j]; `nodes` gives
// the input nodes' shapes and fracs. `out` holds batch * node.elements values.
void RunElementwiseNode(const std::vector<NodeInfo>& nodes, const NodeInfo& node,
                        const std::vector<const int8_t*>& inputs, int batch, int8_t* out);

}  // namespace r2f::accel
