// Accuracy of a LibTorch GraphModule on a data set: float, or fake-quant int8.
#pragma once

#include <torch/torch.h>

#include "common/base/metrics.h"
#include "common/data/dataset.h"
#include "r2f.pb.h"
#include "server/model/graph_module.h"
#include "server/model/quantize.h"

namespace r2f {

struct EvalOptions {
  int batch_size = 256;
  int64_t limit = 0;  // first `limit` samples; 0 = all
};

// Float model (BatchNorm in eval mode) on normalised inputs.
Accuracy EvaluateFloat(GraphModule& module, const Dataset& data, const InputNormalization& norm,
                       const EvalOptions& options);

// Fake-quant forward of `module` with the formats and input table of `model`. In kDouble this is
// bit-exact with the device's int8 executor (docs/quantization.md).
Accuracy EvaluateFakeQuant(GraphModule& module, const pb::QuantizedModel& model,
                           const Dataset& data, torch::Dtype dtype, const EvalOptions& options);

}  // namespace r2f
