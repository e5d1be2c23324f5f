#include "server/retrain/device_mirror.h"

#include "accel_sim/cycle_model.h"
#include "common/ir/graph.h"
#include "server/search/critical_layers.h"

namespace r2f {

Result<std::unique_ptr<DeviceMirror>> DeviceMirror::Create(pb::QuantizedModel model,
                                                           const accel::AcceleratorConfig& config) {
  R2F_ASSIGN_OR_RETURN(std::unique_ptr<accel::Accelerator> clean,
                       accel::Accelerator::Create(std::move(model), config));
  return std::unique_ptr<DeviceMirror>(new DeviceMirror(config, std::move(clean)));
}

void DeviceMirror::Set(pb::QuantizedModel model) {
  pending_ = std::move(model);
  stale_ = true;
}

Result<accel::Accelerator*> DeviceMirror::Clean() {
  if (stale_) {
    // From a copy, so that model() is still there if the build fails.
    R2F_ASSIGN_OR_RETURN(clean_, accel::Accelerator::Create(pending_, config_));
    pending_.Clear();
    stale_ = false;
  }
  return clean_.get();
}

Result<double> DeviceMirror::TmrOverhead(const accel::TmrConfig& tmr, int batch) const {
  pb::Graph graph = model().graph();
  R2F_RETURN_IF_ERROR(InferShapes(&graph));
  const accel::MacLayerCosts costs = accel::ModelMacLayerCosts(config_, graph, batch);
  const std::vector<uint32_t>& protect =
      tmr.mode == accel::TmrMode::kLayerWise ? costs.layers : tmr.protected_layers;
  return RedundantOverhead(costs.layers, costs.cycles, protect);
}

}  // namespace r2f
