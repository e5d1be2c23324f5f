// Execution of one MAC layer on a set of images: the clean int32 accumulators
// acc[c] = bias[c] + sum w*x (one GEMM per distinct input image), requantised to int8
// (docs/quantization.md) into one or more outputs per image, each with its own soft errors.
//
// One image can feed several outputs: the replicas of a TMR-protected layer, or chains (NW-TMR,
// training mode) whose inputs still agree bit for bit. Each output ("target") names the
// ExecutionFaults of its one or three executions; the GEMM epilogue adds their deltas while
// requantising, votes three replicas bitwise and applies hidden and output flips.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "accel_sim/compiled_model.h"
#include "accel_sim/execution_faults.h"
#include "accel_sim/fault_plan.h"
#include "common/base/status.h"

namespace r2f::accel {

struct MacTarget {
  int8_t* output = nullptr;  // the image's output, CHW, out_elements() values
  int replicas = 1;          // 1: one execution; 3: three executions, bitwise-voted (TMR)
  // Per execution: its faults, or nullptr if it has no flips.
  std::array<const ExecutionFaults*, 3> faults = {nullptr, nullptr, nullptr};
  // Three replicas only, optional: per output element, set to 1 where the replicas' int32
  // accumulators (or hidden states) are not all equal, so the vote may be wrong there; left 0
  // elsewhere. Must start zeroed.
  uint8_t* disagree = nullptr;
};

struct MacImage {
  // The layer input, CHW, in_elements() values: the clean input shared by the targets, or a
  // lone execution's bit-flipped copy (ExecutionFaults::Build's faulty_input).
  const int8_t* input = nullptr;
  std::vector<MacTarget> targets;  // at least one
};

// Runs `layer` on every image. Bit-exact for any int8 data; parallel with OpenMP. Lowering:
// im2col + the exact int8 GEMM (int16_gemm.h), or a direct int32 loop for small grouped
// convolutions (layer.direct_kernel).
void RunMacLayer(const MacLayer& layer, const std::vector<MacImage>& images);

// The single-image form with explicit flip lists (one plan, or three for a TMR-voted layer):
// what the executor does for sampled flips, open to tests that plant flips by hand. With three
// plans and `disagree` (out_elements() bytes), MacTarget::disagree is marked there.
Status RunMacLayerWithPlans(const MacLayer& layer, const int8_t* input,
                            const std::vector<FaultPlan>& plans, int8_t* output,
                            uint8_t* disagree = nullptr);

}  // namespace r2f::accel
