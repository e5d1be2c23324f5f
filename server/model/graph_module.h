// GraphModule: the one generic LibTorch executor of the graph IR. The float model is built
// *from* a pb::Graph, so the float model and the graph can never disagree: every MAC node owns
// its parameters (and a BatchNorm while it is not folded), every other node is a functional op.
//
// Three ways to run it (ForwardOptions):
//  - float: training / evaluation of the float model (BN in train or eval mode);
//  - fake-quant: the int8 arithmetic of docs/quantization.md with straight-through gradients
//    (float32 for training; float64 reproduces the device's integers exactly);
//  - hardware in the loop: fake-quant, with every MAC layer's output replaced by the value the
//    device produced, straight through (docs/retraining.md).
#pragma once

#include <torch/torch.h>

#include <map>
#include <vector>

#include "r2f.pb.h"
#include "server/model/fake_quant_ops.h"

namespace r2f {

// Fixed-point formats used by the fake-quant forward (kept fixed through retraining).
struct QuantFormat {
  std::vector<int> activation_frac;                  // per node id
  std::map<uint32_t, std::vector<int>> weight_frac;  // per MAC node id, per output channel
};

struct ForwardOptions {
  const QuantFormat* quant = nullptr;  // null: float forward
  // Hardware in the loop: MAC node id -> the device's output for this batch, dequantized
  // (same shape as the layer output). Requires quant.
  const std::map<uint32_t, torch::Tensor>* device_outputs = nullptr;
  bool keep_all = false;  // return every node's output, not only the logits
};

class GraphModuleImpl : public torch::nn::Module {
 public:
  // `graph` must be shape-inferred (InferShapes). Parameters are initialised like torchvision
  // (Kaiming normal fan-out for conv, uniform for linear, BN weight 1 / bias 0).
  explicit GraphModuleImpl(pb::Graph graph);

  // Float forward, logits only. Input [B, C, H, W] float (normalised images).
  torch::Tensor forward(torch::Tensor x);

  // The outputs of all nodes (or only the logits in element 0 when !keep_all).
  std::vector<torch::Tensor> Run(torch::Tensor x, const ForwardOptions& options);

  const pb::Graph& graph() const { return graph_; }
  bool folded() const { return folded_; }

  // Folds every BatchNorm into its convolution with the running statistics (docs/quantization.md):
  // w' = w * g / s, b' = (b - mean) * g / s + beta, s = sqrt(var + eps). After this the graph
  // has batch_norm = false everywhere and each MAC layer has a bias.
  void FoldBatchNorm();

  // Per MAC node: weight [out, in/groups, kh, kw] or [out, in], bias [out] (after folding).
  torch::Tensor& weight(uint32_t node_id) { return params_.at(node_id).weight; }
  torch::Tensor& bias(uint32_t node_id) { return params_.at(node_id).bias; }

 private:
  struct MacParams {
    torch::Tensor weight;
    torch::Tensor bias;  // undefined while a BatchNorm follows
    torch::nn::BatchNorm2d bn{nullptr};
  };
  torch::Tensor RunMac(const pb::Node& node, const torch::Tensor& x, const ForwardOptions& o,
                       int input_frac);

  pb::Graph graph_;
  std::map<uint32_t, MacParams> params_;
  bool folded_ = false;
};
TORCH_MODULE(GraphModule);
}  // namespace r2f
