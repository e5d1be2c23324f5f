// Quantisation on the server: calibration of the fixed-point formats, the paper's
// convertFloat2Int (folded float model -> QuantizedModel for the device) and convertInt2Float
// (QuantizedModel and device int8 tensors -> float), per docs/quantization.md.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "accel_sim/int8_tensor.h"
#include "common/base/status.h"
#include "r2f.pb.h"
#include "server/model/graph_module.h"

namespace r2f {

struct InputNormalization {
  std::vector<float> mean;    // per channel, of pixel / 255
  std::vector<float> stddev;  // per channel
};

// Float input tensor [B, C, H, W] from uint8 pixels: (p/255 - mean) / std.
torch::Tensor NormalizedInput(const uint8_t* pixels, int batch, const pb::Shape& chw,
                              const InputNormalization& norm);

// The fake-quant input: the model's input table applied to the pixels, dequantized, in `dtype`.
torch::Tensor LutInput(const uint8_t* pixels, int batch, const pb::QuantizedModel& model,
                       torch::Dtype dtype = torch::kFloat);

// Records the value distribution of every node of a folded float model over calibration
// batches and chooses the fixed-point formats (docs/quantization.md, "Calibration").
class Calibrator {
 public:
  Calibrator(GraphModule module, InputNormalization norm);
  // Runs one batch of uint8 images through the float model and records statistics.
  void Observe(const uint8_t* pixels, int batch);
  // The formats; requires at least one Observe().
  Result<QuantFormat> Finish();

 private:
  GraphModule module_;
  InputNormalization norm_;
  std::vector<std::vector<float>> samples_;  // per node, a bounded sample of values
  std::vector<uint8_t> pixel_sample_;
};

// The paper's convertFloat2Int: the folded float model with fixed formats -> int8 model.
Result<pb::QuantizedModel> ConvertFloat2Int(GraphModule& folded, const QuantFormat& format,
                                            const InputNormalization& norm, uint64_t model_version);

// convertFloat2Int for retraining: the weights and biases of `folded` quantized with the
// formats of `like` (the deployed model), everything else (graph, activation formats, input
// table) copied from `like`, so the int8 representation never drifts.
Result<pb::QuantizedModel> ConvertFloat2Int(GraphModule& folded, const pb::QuantizedModel& like,
                                            uint64_t model_version);

// The paper's convertInt2Float for models: a folded float module whose weights and biases are
// the dequantized integers of `model`, and the model's formats.
struct FloatModel {
  GraphModule module{nullptr};
  QuantFormat format;
  InputNormalization norm;
};
Result<FloatModel> ConvertInt2Float(const pb::QuantizedModel& model);

// convertInt2Float for device tensors: q * 2^-frac as a float tensor [batch, dims...].
torch::Tensor ConvertInt2Float(const accel::Int8Tensor& tensor, torch::Dtype dtype = torch::kFloat);

// The formats stored in a QuantizedModel.
QuantFormat FormatOf(const pb::QuantizedModel& model);

}  // namespace r2f
