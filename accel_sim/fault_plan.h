// The bit flips of one MAC-layer execution on one image (one TMR replica), listed per fault site
// (docs/accel_sim.md, "Faults").
//
// A FaultPlan lists flips per site. Element indices are per image:
//   weights: index into the layer's int8 weights [out, in/groups, kh, kw]   (8 bits each)
//   inputs:  index into the image's input feature map, CHW order           (8 bits each)
//   hidden:  index into the image's int32 accumulators, CHW order          (32 bits each)
//   outputs: index into the image's stored int8 outputs, CHW order         (8 bits each)
// Sampled plans come from SampleFaultPlan (fault_sampler.h); tests build plans by hand and pass
// them to RunMacLayerWithPlans (mac_kernels.h) to plant exact flips.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "accel_sim/accelerator.h"

namespace r2f::accel {

struct BitFlip {
  uint32_t element = 0;
  uint32_t bit = 0;  // 0 = least significant; < the site's width
};

struct FaultPlan {
  std::array<std::vector<BitFlip>, kNumFaultSites> flips;

  std::vector<BitFlip>& at(FaultSite site) { return flips[static_cast<int>(site)]; }
  const std::vector<BitFlip>& at(FaultSite site) const { return flips[static_cast<int>(site)]; }
  bool Empty() const {
    for (const auto& f : flips) {
      if (!f.empty()) return false;
    }
    return true;
  }
  void Clear() {
    for (auto& f : flips) f.clear();
  }
};

// Bits per element of each site: int8 weights, int8 inputs, int32 accumulators, int8 outputs.
inline constexpr std::array<int, kNumFaultSites> kSiteBitWidth = {8, 8, 32, 8};
static_assert(kSiteBitWidth[0] == 8 && kSiteBitWidth[1] == 8 && kSiteBitWidth[2] == 32 &&
                  kSiteBitWidth[3] == 8,
              "SampleFaultPlan splits positions into element and bit by shifts");

// Per-image element counts of one MAC layer's sites.
struct LayerExposure {
  std::array<uint64_t, kNumFaultSites> elements = {};  // hidden and outputs share out_elements

  uint64_t Bits(FaultSite site) const {
    const int s = static_cast<int>(site);
    return elements[s] * static_cast<uint64_t>(kSiteBitWidth[s]);
  }
};

// What identifies one layer execution's soft errors: the key of its private random stream
// (FaultStream in fault_sampler.h, HashCombine in common/base/random.h).
struct FaultKey {
  uint64_t seed = 0;
  uint64_t execution_tag = 0;
  uint64_t sample_id = 0;
  uint32_t node_id = 0;
  uint32_t replica = 0;  // TMR replica / chain index: independent faults per replica
};

}  // namespace r2f::accel
