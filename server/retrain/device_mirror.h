// The server's mirror of one device: the model the device runs (as this server last deployed
// and the device acknowledged it) and a fault-free simulator of that model, built when first
// needed. The retraining loop
// rebuilds increment-encoded layers with the simulator (server/retrain/reconstruct.h) and costs
// the TMR protection set with the device's accelerator geometry; this class is the one owner of
// both, so they can never describe different models.
#pragma once

#include <memory>

#include "accel_sim/accelerator.h"
#include "common/base/status.h"
#include "r2f.pb.h"

namespace r2f {

class DeviceMirror {
 public:
  // Validates `model` as the device would (accel::Accelerator::Create).
  static Result<std::unique_ptr<DeviceMirror>> Create(pb::QuantizedModel model,
                                                      const accel::AcceleratorConfig& config);

  // The device now runs `model` (after an acknowledged deployModel, so the device has validated
  // it). Its output shapes are inferred now (a rebuild reads them); its simulator is built on
  // the first Clean(): DRM's replies need none, and building one (validating and packing every
  // layer) cost DRM ~1 ms per iteration.
  Status Set(pb::QuantizedModel model);

  // Stays valid across Clean() (a rebuild holds it while it asks for the simulator).
  const pb::QuantizedModel& model() const { return model_; }
  // The clean simulator of model(): no faults, no TMR. An error only if model() fails the
  // simulator's validation, which the device, running the same code, would have refused.
  Result<accel::Accelerator*> Clean();

  // r = 2 * sum_{i in S} O_i / sum_i O_i of the protection set of `tmr` (every MAC layer for
  // layer-wise TMR), with O_i the cycles of layer i for one batch of `batch` images.
  Result<double> TmrOverhead(const accel::TmrConfig& tmr, int batch) const;

 private:
  DeviceMirror(const accel::AcceleratorConfig& config, std::unique_ptr<accel::Accelerator> clean)
      : config_(config), clean_(std::move(clean)), model_(clean_->model()) {}

  accel::AcceleratorConfig config_;
  std::unique_ptr<accel::Accelerator> clean_;  // of model_ unless stale_
  pb::QuantizedModel model_;
  bool stale_ = false;
};

}  // namespace r2f
