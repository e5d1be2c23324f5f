#include "accel_sim/accelerator.h"

namespace r2f::accel {

const char* FaultSiteName(FaultSite site) {
  switch (site) {
    case FaultSite::kWeights: return "weights";
    case FaultSite::kInputs: return "inputs";
    case FaultSite::kHidden: return "hidden";
    case FaultSite::kOutputs: return "outputs";
  }
  return "unknown";
}

}  // namespace r2f::accel
