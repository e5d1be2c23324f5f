#include "server/model/evaluate.h"

#include <algorithm>

namespace r2f {
namespace {

template <typename Forward>
Accuracy Evaluate(const Dataset& data, const EvalOptions& options, Forward forward) {
  torch::NoGradGuard no_grad;
  Accuracy acc;
  const int64_t n = options.limit > 0 ? std::min<int64_t>(options.limit, data.size()) : data.size();
  for (int64_t start = 0; start < n; start += options.batch_size) {
    const int batch = static_cast<int>(std::min<int64_t>(options.batch_size, n - start));
    torch::Tensor logits = forward(data.image(start), batch).to(torch::kFloat).contiguous();
    const int classes = static_cast<int>(logits.size(1));
    const float* l = logits.data_ptr<float>();
    for (int i = 0; i < batch; ++i) acc.AddFloat(l + i * classes, classes, data.labels[start + i]);
  }
  return acc;
}

}  // namespace

Accuracy EvaluateFloat(GraphModule& module, const Dataset& data, const InputNormalization& norm,
                       const EvalOptions& options) {
  module->eval();
  const pb::Shape& chw = module->graph().input_shape();
  return Evaluate(data, options, [&](const uint8_t* pixels, int batch) {
    return module->forward(NormalizedInput(pixels, batch, chw, norm));
  });
}

Accuracy EvaluateFakeQuant(GraphModule& module, const pb::QuantizedModel& model,
                           const Dataset& data, torch::Dtype dtype, const EvalOptions& options) {
  module->eval();
  module->to(dtype);
  QuantFormat format = FormatOf(model);
  ForwardOptions fo;
  fo.quant = &format;
  Accuracy acc = Evaluate(data, options, [&](const uint8_t* pixels, int batch) {
    return module->Run(LutInput(pixels, batch, model, dtype), fo)[0];
  });
  module->to(torch::kFloat);
  return acc;
}

}  // namespace r2f
