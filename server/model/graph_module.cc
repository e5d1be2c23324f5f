#include "server/model/graph_module.h"

#include <climits>
#include <cmath>
#include <stdexcept>
#include <string>

#include "common/ir/graph.h"

namespace r2f {
namespace F = torch::nn::functional;

namespace {

std::string ParamName(const char* kind, uint32_t id) { return kind + std::to_string(id); }

}  // namespace

GraphModuleImpl::GraphModuleImpl(pb::Graph graph) : graph_(std::move(graph)) {
  for (const pb::Node& node : graph_.nodes()) {
    if (!IsMacLayer(node)) continue;
    MacParams p;
    const pb::Shape& in = graph_.nodes(node.inputs(0)).output_shape();
    if (node.op() == pb::OP_CONV) {
      const pb::ConvAttr& c = node.conv();
      int64_t out = c.out_channels();
      int64_t fan_out = out / c.groups() * c.kernel_h() * c.kernel_w();
      p.weight = torch::randn({out, in.dims(0) / c.groups(), c.kernel_h(), c.kernel_w()}) *
                 std::sqrt(2.0 / fan_out);
      if (c.batch_norm()) {
        p.bn = register_module(ParamName("bn", node.id()), torch::nn::BatchNorm2d(out));
      } else {
        p.bias = torch::zeros({out});
      }
    } else {
      int64_t in_f = in.dims(0), out_f = node.linear().out_features();
      double bound = 1.0 / std::sqrt(static_cast<double>(in_f));
      p.weight = torch::empty({out_f, in_f}).uniform_(-bound, bound);
      p.bias = torch::empty({out_f}).uniform_(-bound, bound);
    }
    p.weight = register_parameter(ParamName("w", node.id()), p.weight);
    if (p.bias.defined()) p.bias = register_parameter(ParamName("b", node.id()), p.bias);
    params_.emplace(node.id(), std::move(p));
  }
}

torch::Tensor GraphModuleImpl::forward(torch::Tensor x) { return Run(x, ForwardOptions{})[0]; }

torch::Tensor GraphModuleImpl::RunMac(const pb::Node& node, const torch::Tensor& x,
                                      const ForwardOptions& o, int input_frac) {
  MacParams& p = params_.at(node.id());
  torch::Tensor w = p.weight, b = p.bias;
  if (o.quant) {
    // Weights and bias on their int8 / int32 grids, straight through to the float masters.
    // Clipped for the weights: a weight saturated at the int8 limit gets no gradient, or SGD
    // would keep pushing a master weight the device can never represent.
    const std::vector<int>& wf = o.quant->weight_frac.at(node.id());
    w = FakeQuantizeChannels(w, wf, -128, 127, /*clip_gradient=*/true, x.scalar_type());
    std::vector<int> acc_frac(wf);
    for (int& f : acc_frac) f += input_frac;
    b = FakeQuantizeChannels(b, acc_frac, INT32_MIN, INT32_MAX, /*clip_gradient=*/false,
                             x.scalar_type());
  }
  torch::Tensor z;
  if (node.op() == pb::OP_CONV) {
    const pb::ConvAttr& c = node.conv();
    z = F::conv2d(x, w,
                  F::Conv2dFuncOptions()
                      .bias(b)
                      .stride({c.stride_h(), c.stride_w()})
                      .padding({c.pad_h(), c.pad_w()})
                      .groups(c.groups()));
    if (p.bn) z = p.bn->forward(z);
  } else {
    z = F::linear(x, w, b);
  }
  const bool relu = node.activation() == pb::ACT_RELU;
  if (!o.quant) return relu ? torch::relu(z) : z;
  const int frac = o.quant->activation_frac.at(node.id());
  if (!o.device_outputs) return FakeQuantize(z, frac, relu);
  auto it = o.device_outputs->find(node.id());
  if (it == o.device_outputs->end()) {
    throw std::invalid_argument("hardware-in-the-loop forward: no device output for layer " +
                                std::to_string(node.id()));
  }
  return TakeDeviceValue(z, it->second, frac, relu);
}

namespace {

// The operators without weights (the device's reliable processor runs them), on the outputs of
// earlier nodes; fake-quantised to the node's format where the device requantises.
torch::Tensor RunOtherOp(const pb::Node& node, const std::vector<torch::Tensor>& out,
                         const ForwardOptions& o) {
  const uint32_t id = node.id();
  auto in = [&](int i) -> const torch::Tensor& { return out[node.inputs(i)]; };
  auto quantize = [&](const torch::Tensor& t, bool relu = false) {
    if (o.quant) return FakeQuantize(t, o.quant->activation_frac.at(id), relu);
    return relu ? torch::relu(t) : t;
  };
  switch (node.op()) {
    case pb::OP_ADD:
      return quantize(in(0) + in(1), node.activation() == pb::ACT_RELU);
    case pb::OP_MAXPOOL: {
      const pb::PoolAttr& p = node.pool();
      return F::max_pool2d(in(0),
                           F::MaxPool2dFuncOptions(p.kernel()).stride(p.stride()).padding(p.pad()));
    }
    case pb::OP_AVGPOOL: {
      const pb::PoolAttr& p = node.pool();
      // Exact window sum, then one IEEE division (docs/quantization.md).
      torch::Tensor sum = F::avg_pool2d(
          in(0), F::AvgPool2dFuncOptions(p.kernel()).stride(p.stride()).divisor_override(1));
      return quantize(sum / static_cast<double>(p.kernel() * p.kernel()));
    }
    case pb::OP_GLOBAL_AVGPOOL: {
      const torch::Tensor& t = in(0);
      return quantize(t.sum({2, 3}, true) / static_cast<double>(t.size(2) * t.size(3)));
    }
    case pb::OP_CONCAT: {
      std::vector<torch::Tensor> parts;
      for (int i = 0; i < node.inputs_size(); ++i) parts.push_back(in(i));
      return quantize(torch::cat(parts, 1));
    }
    case pb::OP_CHANNEL_SHUFFLE: {
      const torch::Tensor& t = in(0);
      int64_t g = node.shuffle().groups();
      return t.view({t.size(0), g, t.size(1) / g, t.size(2), t.size(3)})
          .transpose(1, 2)
          .reshape({t.size(0), t.size(1), t.size(2), t.size(3)});
    }
    case pb::OP_FLATTEN:
      return in(0).reshape({in(0).size(0), -1});
    case pb::OP_SLICE:
      return in(0).slice(1, node.slice().begin(), node.slice().end());
    default:
      throw std::invalid_argument("GraphModule: unsupported op in node " + std::to_string(id));
  }
}

}  // namespace

std::vector<torch::Tensor> GraphModuleImpl::Run(torch::Tensor x, const ForwardOptions& o) {
  const int n = graph_.nodes_size();
  std::vector<torch::Tensor> out(n);
  auto frac = [&](uint32_t id) { return o.quant ? o.quant->activation_frac.at(id) : 0; };
  // Free intermediate results as soon as their last consumer ran (unless all are kept).
  std::vector<int> last_use(n, -1);
  for (const pb::Node& node : graph_.nodes()) {
    for (uint32_t in : node.inputs()) last_use[in] = static_cast<int>(node.id());
  }
  last_use[graph_.output()] = n;

  for (const pb::Node& node : graph_.nodes()) {
    const uint32_t id = node.id();
    if (node.op() == pb::OP_INPUT) {
      out[id] = x;
    } else if (node.op() == pb::OP_CONV || node.op() == pb::OP_LINEAR) {
      out[id] = RunMac(node, out[node.inputs(0)], o, frac(node.inputs(0)));
    } else {
      out[id] = RunOtherOp(node, out, o);
    }
    if (!o.keep_all) {
      for (uint32_t input : node.inputs()) {
        if (last_use[input] == static_cast<int>(id)) out[input] = torch::Tensor();
      }
    }
  }
  if (o.keep_all) return out;
  return {out[graph_.output()]};
}

void GraphModuleImpl::FoldBatchNorm() {
  if (folded_) return;
  torch::NoGradGuard no_grad;
  for (pb::Node& node : *graph_.mutable_nodes()) {
    if (node.op() != pb::OP_CONV || !node.conv().batch_norm()) continue;
    MacParams& p = params_.at(node.id());
    const torch::nn::BatchNorm2dOptions& opt = p.bn->options;
    torch::Tensor scale = p.bn->weight / torch::sqrt(p.bn->running_var + opt.eps());
    p.weight.set_data(p.weight * scale.view({-1, 1, 1, 1}));
    torch::Tensor bias = p.bn->bias - p.bn->running_mean * scale;
    p.bias = register_parameter(ParamName("b", node.id()), bias.clone());
    unregister_module(ParamName("bn", node.id()));
    p.bn = nullptr;
    node.mutable_conv()->set_batch_norm(false);
  }
  folded_ = true;
}

}  // namespace r2f
