#include "server/model/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/ir/fixed_point.h"
#include "common/ir/graph.h"

namespace r2f {
namespace {

constexpr int kMinFrac = -16;
constexpr int kMaxFrac = 24;
constexpr size_t kSamplesPerNode = 1 << 18;

// The largest f with max_abs * 2^f <= 127.5, so that the extreme value rounds into int8.
int FracForMax(double max_abs) {
  if (!(max_abs > 0)) return 0;
  int f = static_cast<int>(std::floor(std::log2(127.5 / max_abs)));
  return std::clamp(f, kMinFrac, kMaxFrac);
}

double QuantError(const std::vector<float>& values, int frac) {
  double scale = std::ldexp(1.0, frac), err = 0;
  for (float v : values) {
    double q = std::clamp(std::floor(v * scale + 0.5), -128.0, 127.0) / scale;
    err += (q - v) * (q - v);
  }
  return err;
}

// Max-based format, or one to two more fractional bits when clipping the few largest values
// lowers the mean squared error (outliers of ReLU outputs would otherwise waste the range).
int ChooseFrac(const std::vector<float>& values, bool allow_clipping) {
  double max_abs = 0;
  for (float v : values) max_abs = std::max<double>(max_abs, std::fabs(v));
  int best = FracForMax(max_abs);
  if (!allow_clipping) return best;
  double best_err = QuantError(values, best);
  for (int f = best + 1; f <= std::min(best + 2, kMaxFrac); ++f) {
    double err = QuantError(values, f);
    if (err < best_err) best = f, best_err = err;
  }
  return best;
}

void AppendSample(const torch::Tensor& t, std::vector<float>* dst) {
  torch::Tensor flat = t.detach().reshape({-1}).to(torch::kFloat).contiguous();
  int64_t n = flat.numel();
  size_t room = kSamplesPerNode > dst->size() ? kSamplesPerNode - dst->size() : 0;
  if (room == 0 || n == 0) return;
  int64_t stride = std::max<int64_t>(1, n / static_cast<int64_t>(room));
  const float* p = flat.data_ptr<float>();
  for (int64_t i = 0; i < n && dst->size() < kSamplesPerNode; i += stride) dst->push_back(p[i]);
}

bool PassesFormatThrough(pb::OpType op) {
  return op == pb::OP_MAXPOOL || op == pb::OP_AVGPOOL || op == pb::OP_GLOBAL_AVGPOOL ||
         op == pb::OP_CHANNEL_SHUFFLE || op == pb::OP_FLATTEN || op == pb::OP_SLICE;
}

// The int8 weights and int32 biases of every MAC layer of `folded` in `format`.
Status AddQuantizedLayers(GraphModule& folded, const QuantFormat& format,
                          pb::QuantizedModel* model) {
  const pb::Graph& graph = folded->graph();
  model->clear_layers();
  for (const pb::Node& node : graph.nodes()) {
    if (!IsMacLayer(node)) continue;
    auto it = format.weight_frac.find(node.id());
    if (it == format.weight_frac.end()) {
      return Status::InvalidArgument("no weight format for layer " + std::to_string(node.id()));
    }
    const std::vector<int>& wf = it->second;
    torch::Tensor wq = QuantizeWeights(folded->weight(node.id()), wf).contiguous();
    torch::Tensor bq =
        QuantizeBias(folded->bias(node.id()), wf, format.activation_frac[node.inputs(0)])
            .contiguous();
    pb::QuantizedLayer* layer = model->add_layers();
    layer->set_node_id(node.id());
    layer->set_weights(
        std::string(reinterpret_cast<const char*>(wq.data_ptr<int8_t>()), wq.numel()));
    const int32_t* b = bq.data_ptr<int32_t>();
    for (int64_t i = 0; i < bq.numel(); ++i) layer->add_bias(b[i]);
    for (int f : wf) layer->add_weight_frac(f);
  }
  return Status::Ok();
}

}  // namespace

torch::Tensor NormalizedInput(const uint8_t* pixels, int batch, const pb::Shape& chw,
                              const InputNormalization& norm) {
  const int64_t c = chw.dims(0), hw = static_cast<int64_t>(chw.dims(1)) * chw.dims(2);
  torch::Tensor x = torch::from_blob(const_cast<uint8_t*>(pixels), {batch, c, hw}, torch::kUInt8)
                        .to(torch::kFloat)
                        .div_(255.0f);
  torch::Tensor mean = torch::tensor(norm.mean).view({1, c, 1});
  torch::Tensor std = torch::tensor(norm.stddev).view({1, c, 1});
  return ((x - mean) / std).view({batch, c, chw.dims(1), chw.dims(2)});
}

torch::Tensor LutInput(const uint8_t* pixels, int batch, const pb::QuantizedModel& model,
                       torch::Dtype dtype) {
  const pb::Shape& chw = model.graph().input_shape();
  const int64_t c = chw.dims(0), hw = static_cast<int64_t>(chw.dims(1)) * chw.dims(2);
  torch::Tensor out = torch::empty({batch, c, hw}, torch::kFloat);
  float* o = out.data_ptr<float>();
  const auto* lut = reinterpret_cast<const int8_t*>(model.input_lut().data());
  const float scale = static_cast<float>(std::ldexp(1.0, -model.activation_frac(0)));
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t ch = 0; ch < c; ++ch) {
      const int64_t base = (b * c + ch) * hw;
      for (int64_t i = 0; i < hw; ++i) o[base + i] = lut[ch * 256 + pixels[base + i]] * scale;
    }
  }
  return out.view({batch, c, chw.dims(1), chw.dims(2)}).to(dtype);
}

Calibrator::Calibrator(GraphModule module, InputNormalization norm)
    : module_(std::move(module)), norm_(std::move(norm)) {
  samples_.resize(module_->graph().nodes_size());
}

void Calibrator::Observe(const uint8_t* pixels, int batch) {
  torch::NoGradGuard no_grad;
  module_->eval();
  const pb::Shape& chw = module_->graph().input_shape();
  ForwardOptions opt;
  opt.keep_all = true;
  std::vector<torch::Tensor> outs = module_->Run(NormalizedInput(pixels, batch, chw, norm_), opt);
  for (size_t i = 0; i < outs.size(); ++i) AppendSample(outs[i], &samples_[i]);
}

Result<QuantFormat> Calibrator::Finish() {
  const pb::Graph& graph = module_->graph();
  if (samples_.empty() || samples_[0].empty()) {
    return Status::InvalidArgument("calibration saw no images");
  }
  QuantFormat fmt;
  fmt.activation_frac.assign(graph.nodes_size(), 0);
  for (const pb::Node& node : graph.nodes()) {
    int& f = fmt.activation_frac[node.id()];
    if (PassesFormatThrough(node.op())) {
      f = fmt.activation_frac[node.inputs(0)];
    } else if (node.op() == pb::OP_CONCAT) {
      f = kMaxFrac;
      for (uint32_t in : node.inputs()) f = std::min(f, fmt.activation_frac[in]);
    } else {
      // The logits are never clipped: a saturated logit can change the predicted class.
      f = ChooseFrac(samples_[node.id()], node.id() != graph.output());
    }
  }
  // Weight formats: per output channel, never clipped, with the int32 bias and the
  // requantisation shift kept in range.
  torch::NoGradGuard no_grad;
  for (const pb::Node& node : graph.nodes()) {
    if (!IsMacLayer(node)) continue;
    torch::Tensor w = module_->weight(node.id()).detach();
    torch::Tensor b = module_->bias(node.id()).detach();
    torch::Tensor max_abs = w.abs().reshape({w.size(0), -1}).amax(1).to(torch::kDouble);
    const int f_in = fmt.activation_frac[node.inputs(0)];
    const int f_out = fmt.activation_frac[node.id()];
    std::vector<int> wf(w.size(0));
    for (int64_t c = 0; c < w.size(0); ++c) {
      int f = FracForMax(max_abs[c].item<double>());
      double bias_abs = std::fabs(b[c].item<double>());
      while (f > kMinFrac && bias_abs * std::ldexp(1.0, f_in + f) > std::ldexp(1.0, 30)) --f;
      f = std::clamp(f, f_out - f_in - 16, f_out - f_in + 40);
      wf[c] = f;
    }
    fmt.weight_frac[node.id()] = std::move(wf);
  }
  return fmt;
}

Result<pb::QuantizedModel> ConvertFloat2Int(GraphModule& folded, const QuantFormat& format,
                                            const InputNormalization& norm,
                                            uint64_t model_version) {
  const pb::Graph& graph = folded->graph();
  if (!folded->folded()) return Status::InvalidArgument("convertFloat2Int needs a BN-folded model");
  if (format.activation_frac.size() != static_cast<size_t>(graph.nodes_size())) {
    return Status::InvalidArgument("format has " + std::to_string(format.activation_frac.size()) +
                                   " activation formats for " + std::to_string(graph.nodes_size()) +
                                   " nodes");
  }
  const int channels = static_cast<int>(graph.input_shape().dims(0));
  if (norm.mean.size() != static_cast<size_t>(channels) ||
      norm.stddev.size() != static_cast<size_t>(channels)) {
    return Status::InvalidArgument("input normalisation does not match the input channels");
  }
  pb::QuantizedModel model;
  model.set_format_version(kQuantizedModelFormatVersion);
  model.set_model_version(model_version);
  *model.mutable_graph() = graph;
  for (int f : format.activation_frac) model.add_activation_frac(f);

  // Input table: exactly the rounding rule, evaluated once in double.
  std::string lut(static_cast<size_t>(channels) * 256, '\0');
  const double in_scale = std::ldexp(1.0, format.activation_frac[0]);
  for (int c = 0; c < channels; ++c) {
    model.add_input_mean(norm.mean[c]);
    model.add_input_std(norm.stddev[c]);
    for (int p = 0; p < 256; ++p) {
      double x = (p / 255.0 - norm.mean[c]) / norm.stddev[c];
      lut[c * 256 + p] =
          static_cast<char>(SaturateInt8(static_cast<int64_t>(std::floor(x * in_scale + 0.5))));
    }
  }
  model.set_input_lut(lut);

  R2F_RETURN_IF_ERROR(AddQuantizedLayers(folded, format, &model));
  return model;
}

Result<pb::QuantizedModel> ConvertFloat2Int(GraphModule& folded, const pb::QuantizedModel& like,
                                            uint64_t model_version) {
  if (!folded->folded()) return Status::InvalidArgument("convertFloat2Int needs a BN-folded model");
  pb::Graph like_graph = like.graph();
  R2F_RETURN_IF_ERROR(InferShapes(&like_graph).WithContext("deployed model"));
  if (folded->graph().SerializeAsString() != like_graph.SerializeAsString()) {
    return Status::InvalidArgument(
        "convertFloat2Int: the float model's graph differs from the "
        "deployed model's");
  }
  pb::QuantizedModel model = like;
  model.set_model_version(model_version);
  R2F_RETURN_IF_ERROR(AddQuantizedLayers(folded, FormatOf(like), &model));
  return model;
}

QuantFormat FormatOf(const pb::QuantizedModel& model) {
  QuantFormat fmt;
  fmt.activation_frac.assign(model.activation_frac().begin(), model.activation_frac().end());
  for (const pb::QuantizedLayer& layer : model.layers()) {
    fmt.weight_frac[layer.node_id()] =
        std::vector<int>(layer.weight_frac().begin(), layer.weight_frac().end());
  }
  return fmt;
}

Result<FloatModel> ConvertInt2Float(const pb::QuantizedModel& model) {
  pb::Graph graph = model.graph();
  R2F_RETURN_IF_ERROR(InferShapes(&graph).WithContext("quantized model"));
  if (model.activation_frac_size() != graph.nodes_size()) {
    return Status::InvalidArgument("quantized model: activation_frac has " +
                                   std::to_string(model.activation_frac_size()) + " entries for " +
                                   std::to_string(graph.nodes_size()) + " nodes");
  }
  FloatModel fm;
  fm.format = FormatOf(model);
  fm.norm.mean.assign(model.input_mean().begin(), model.input_mean().end());
  fm.norm.stddev.assign(model.input_std().begin(), model.input_std().end());
  fm.module = GraphModule(graph);
  fm.module->FoldBatchNorm();  // no BN in a quantized graph: only marks the module folded
  torch::NoGradGuard no_grad;
  for (const pb::QuantizedLayer& layer : model.layers()) {
    if (layer.node_id() >= static_cast<uint32_t>(graph.nodes_size()) ||
        !IsMacLayer(graph.nodes(layer.node_id()))) {
      return Status::InvalidArgument("quantized model: layer entry for node " +
                                     std::to_string(layer.node_id()) + " is not a MAC layer");
    }
    torch::Tensor& w = fm.module->weight(layer.node_id());
    torch::Tensor& b = fm.module->bias(layer.node_id());
    const int64_t out = w.size(0);
    if (static_cast<int64_t>(layer.weights().size()) != w.numel() || layer.bias_size() != out ||
        layer.weight_frac_size() != out) {
      return Status::InvalidArgument("quantized model: layer " + std::to_string(layer.node_id()) +
                                     " has parameters of the wrong size");
    }
    const int f_in = model.activation_frac(graph.nodes(layer.node_id()).inputs(0));
    torch::Tensor wq =
        torch::from_blob(const_cast<char*>(layer.weights().data()), w.sizes(), torch::kInt8)
            .to(torch::kFloat);
    std::vector<float> bias(out), wscale(out);
    for (int64_t c = 0; c < out; ++c) {
      wscale[c] = static_cast<float>(std::ldexp(1.0, -layer.weight_frac(c)));
      bias[c] = static_cast<float>(layer.bias(c) * std::ldexp(1.0, -(f_in + layer.weight_frac(c))));
    }
    std::vector<int64_t> shape(w.dim(), 1);
    shape[0] = out;
    w.set_data(wq * torch::tensor(wscale).view(shape));
    b.set_data(torch::tensor(bias));
  }
  return fm;
}

torch::Tensor ConvertInt2Float(const accel::Int8Tensor& tensor, torch::Dtype dtype) {
  std::vector<int64_t> shape{tensor.batch};
  for (uint32_t d : tensor.dims) shape.push_back(d);
  return torch::from_blob(const_cast<int8_t*>(tensor.data.data()), shape, torch::kInt8)
      .to(dtype)
      .mul_(std::ldexp(1.0, -tensor.frac));
}

}  // namespace r2f
