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

Status DeviceMirror::Set(pb::QuantizedModel model) {
  R2F_RETURN_IF_ERROR(InferShapes(model.mutable_graph()));
  model_ = std::move(model);
  stale_ = true;
  return Status::Ok();
}

Result<accel::Accelerator*> DeviceMirror::Clean() {
  if (stale_) {
    // From the stale simulator's prepared layers: the model changed in few weights.
    R2F_ASSIGN_OR_RETURN(clean_, accel::Accelerator::Create(model_, config_, clean_.get()));
    stale_ = false;
  }
  return clean_.get();
}

Result<double> DeviceMirror::TmrOverhead(const accel::TmrConfig& tmr, int batch) const {
  pb::Graph graph = model().graph();
  R2F_RETURN_IF_ERROR(InferShapes(&graph));
  const accel::MacLayerCosts costs = accel::ModelMacLayerCosts(config_, graph, batch);
  std::vector<uint32_t> tripled;
  for (uint32_t id : costs.layers) {
    if (tmr.Triplicates(id)) tripled.push_back(id);
  }
  return RedundantOverhead(costs.layers, costs.cycles, tripled);
}

}  // namespace r2f
