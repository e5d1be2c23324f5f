// Hardware-in-the-loop training step (docs/retraining.md, "One iteration", step 3): the server's
// forward pass takes every MAC layer's value from the device (straight through: the value is the
// device's, the gradient flows through the clean fake-quant layer function), then loss,
// backpropagation and an SGD step on float master weights; the fixed-point formats never change, so
// convertFloat2Int of the master weights is the next model to deploy.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "accel_sim/int8_tensor.h"
#include "common/base/status.h"
#include "r2f.pb.h"
#include "server/model/hil_settings.h"
#include "server/model/quantize.h"

namespace r2f {

struct HilStepResult {
  double loss = 0;
  int64_t top1_hits = 0;  // of the device's logits on this batch
  int64_t samples = 0;
};

class HilTrainer {
 public:
  // Master weights start as the dequantized integers of `deployed` (the paper's
  // convertInt2Float), so retraining starts exactly from what the device runs.
  static Result<std::unique_ptr<HilTrainer>> Create(const pb::QuantizedModel& deployed,
                                                    const HilSettings& settings);

  // One SGD step. `layers` are the faulty chain's outputs of every MAC layer (graph order) for
  // the batch of `pixels` (uint8 NCHW) with their labels.
  Result<HilStepResult> Step(const std::string& pixels, const std::string& labels,
                             const std::vector<accel::Int8Tensor>& layers);

  // convertFloat2Int of the master weights with the deployed formats.
  Result<pb::QuantizedModel> Export(uint64_t model_version);

  // Master weights and optimizer state (momentum), for checkpoints.
  Status Save(const std::string& path_prefix);
  Status Load(const std::string& path_prefix);

 private:
  HilTrainer(FloatModel model, pb::QuantizedModel deployed, const HilSettings& settings);
  FloatModel float_model_;
  pb::QuantizedModel deployed_;  // the formats and input table stay those of the first model
  std::vector<uint32_t> mac_layers_;
  std::unique_ptr<torch::optim::SGD> optimizer_;
};

}  // namespace r2f
