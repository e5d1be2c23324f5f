#include "server/model/hil_trainer.h"

#include <filesystem>
#include <sstream>

#include "common/base/atomic_file.h"
#include "common/ir/graph.h"

namespace r2f {

void SetTrainingThreads(int threads) {
  if (threads > 0) torch::set_num_threads(threads);
}

HilTrainer::HilTrainer(FloatModel model, pb::QuantizedModel deployed, const HilSettings& s)
    : float_model_(std::move(model)),
      deployed_(std::move(deployed)),
      mac_layers_(MacLayerIds(deployed_.graph())) {
  std::vector<torch::Tensor> params;
  for (auto& p : float_model_.module->parameters()) params.push_back(p);
  optimizer_ = std::make_unique<torch::optim::SGD>(
      params, torch::optim::SGDOptions(s.lr).momentum(s.momentum).weight_decay(s.weight_decay));
}

Result<std::unique_ptr<HilTrainer>> HilTrainer::Create(const pb::QuantizedModel& deployed,
                                                       const HilSettings& settings) {
  R2F_ASSIGN_OR_RETURN(FloatModel fm, ConvertInt2Float(deployed));
  fm.module->train();
  return std::unique_ptr<HilTrainer>(new HilTrainer(std::move(fm), deployed, settings));
}

Result<HilStepResult> HilTrainer::Step(const std::string& pixels, const std::string& labels,
                                       const std::vector<accel::Int8Tensor>& layers) {
  const int batch = static_cast<int>(labels.size());
  const pb::Graph& graph = deployed_.graph();
  if (batch == 0 ||
      pixels.size() != static_cast<size_t>(NumElements(graph.input_shape())) * batch) {
    return Status::InvalidArgument("training step: " + std::to_string(pixels.size()) +
                                   " pixel bytes for " + std::to_string(batch) + " labels");
  }
  if (layers.size() != mac_layers_.size()) {
    return Status::InvalidArgument("training step: " + std::to_string(layers.size()) +
                                   " layer outputs for " + std::to_string(mac_layers_.size()) +
                                   " MAC layers");
  }
  std::map<uint32_t, torch::Tensor> device_outputs;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i].batch != batch) {
      return Status::InvalidArgument("training step: layer " + std::to_string(mac_layers_[i]) +
                                     " has a batch of " + std::to_string(layers[i].batch));
    }
    device_outputs[mac_layers_[i]] = ConvertInt2Float(layers[i]);
  }
  std::vector<int64_t> y(batch);
  for (int i = 0; i < batch; ++i) {
    y[i] = static_cast<uint8_t>(labels[i]);
    if (y[i] >= static_cast<int64_t>(graph.num_classes())) {
      return Status::InvalidArgument("training step: label " + std::to_string(y[i]) +
                                     " outside the model's " + std::to_string(graph.num_classes()) +
                                     " classes");
    }
  }
  torch::Tensor target = torch::tensor(y, torch::kInt64);

  ForwardOptions options;
  options.quant = &float_model_.format;
  options.device_outputs = &device_outputs;
  torch::Tensor x =
      LutInput(reinterpret_cast<const uint8_t*>(pixels.data()), batch, deployed_, torch::kFloat);
  optimizer_->zero_grad();
  torch::Tensor logits = float_model_.module->Run(x, options)[0];
  torch::Tensor loss = torch::nn::functional::cross_entropy(logits, target);
  loss.backward();
  optimizer_->step();

  HilStepResult r;
  r.loss = loss.item<double>();
  r.top1_hits = logits.argmax(1).eq(target).sum().item<int64_t>();
  r.samples = batch;
  return r;
}

Result<pb::QuantizedModel> HilTrainer::Export(uint64_t model_version) {
  return ConvertFloat2Int(float_model_.module, deployed_, model_version);
}

Status HilTrainer::Save(const std::string& prefix) {
  // Serialised in memory, then written durably (fsync, rename): the checkpoint's state.yaml
  // names these files next, and a power cut must not leave it naming torn ones.
  std::ostringstream weights, optimizer;
  try {
    torch::save(float_model_.module, weights);
    torch::save(*optimizer_, optimizer);
  } catch (const c10::Error& e) {
    return Status::IoError("cannot save training state to " + prefix + ": " +
                           e.what_without_backtrace());
  }
  R2F_RETURN_IF_ERROR(WriteFileAtomically(prefix + ".weights.pt", weights.str()));
  return WriteFileAtomically(prefix + ".optimizer.pt", optimizer.str());
}

Status HilTrainer::Load(const std::string& prefix) {
  try {
    torch::load(float_model_.module, prefix + ".weights.pt");
    torch::load(*optimizer_, prefix + ".optimizer.pt");
  } catch (const c10::Error& e) {
    return Status::Corruption("cannot load training state from " + prefix + ": " +
                              e.what_without_backtrace());
  }
  return Status::Ok();
}

}  // namespace r2f
