#include "accel_sim/compiled_model.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <limits>
#include <string>

#include "accel_sim/parallel_for.h"
#include "common/base/byte_flags.h"

namespace r2f::accel {
namespace {

std::string NodeLabel(const pb::Node& node) {
  return "node " + std::to_string(node.id()) + " '" + node.name() + "' (" + OpName(node.op()) + ")";
}

std::string LayerLabel(const pb::Node& node) {
  return "layer " + std::to_string(node.id()) + " '" + node.name() + "'";
}

Status NodeError(const pb::Node& node, const std::string& what) {
  return Status::InvalidArgument(NodeLabel(node) + ": " + what);
}

Status LayerError(const pb::Node& node, const std::string& what) {
  return Status::InvalidArgument(LayerLabel(node) + ": " + what);
}

bool FracInRange(int64_t f) { return f >= -kMaxFrac && f <= kMaxFrac; }

// weights_t: each group's [group_out_c][k] weights as [k][group_out_c], in square tiles so that
// both sides stay in cache (a whole column at a time missed it on every store; a deployModel
// rebuilds every layer).
void TransposeGroups(MacLayer& L) {
  constexpr int kTile = 32;
  for (int g = 0; g < L.groups; ++g) {
    const int8_t* src = L.weights.data() + static_cast<int64_t>(g) * L.group_out_c * L.k;
    int8_t* dst = L.weights_t.data() + static_cast<int64_t>(g) * L.k * L.group_out_c;
    for (int n0 = 0; n0 < L.group_out_c; n0 += kTile) {
      const int n1 = std::min(n0 + kTile, L.group_out_c);
      for (int k0 = 0; k0 < L.k; k0 += kTile) {
        const int k1 = std::min(k0 + kTile, L.k);
        for (int n = n0; n < n1; ++n) {
          for (int kk = k0; kk < k1; ++kk) {
            dst[static_cast<int64_t>(kk) * L.group_out_c + n] =
                src[static_cast<int64_t>(n) * L.k + kk];
          }
        }
      }
    }
  }
}

// previous's layer at L's position when its prepared arrays have L's shape: the same node,
// geometry and kernel path, packed in the layout PackWeights would choose now. Null otherwise.
const MacLayer* ReusablePreparation(const MacLayer& L, const CompiledModel* previous) {
  if (previous == nullptr || L.mac_index >= static_cast<int>(previous->mac_layers().size())) {
    return nullptr;
  }
  const MacLayer& p = previous->mac_layers()[L.mac_index];
  const bool same = p.node_id == L.node_id && p.out_c == L.out_c && p.k == L.k &&
                    p.groups == L.groups && p.direct_kernel == L.direct_kernel &&
                    p.weights.size() == static_cast<size_t>(L.weight_count()) &&
                    p.weights_t.size() == p.weights.size() &&
                    p.packed.size() == (L.direct_kernel ? 0u : static_cast<size_t>(L.groups));
  if (!same) return nullptr;
  for (const PackedWeights& packed : p.packed) {
    if (packed.layout != GemmIsaLayout(GemmIsa::kAuto) || packed.n != L.group_out_c) {
      return nullptr;
    }
  }
  return &p;
}

// L's prepared arrays for `weights` ([out_c][k]) from `before`'s, which have L's shape: the
// int8 copy taken from `weights`, the transposed and packed copies from `before`'s, with every
// weight that differs from `before` written into them. Sixteen weights are compared at a time,
// and only those that differ are visited: a retraining step changes few of them, and a walk
// that looked at each weight of a differing group of eight was a third of a reusing build.
void PatchPreparation(const MacLayer& before, const std::string& weights, MacLayer& L) {
  const auto* target = reinterpret_cast<const int8_t*>(weights.data());
  L.weights.assign(target, target + weights.size());
  L.weights_t = before.weights_t;
  L.packed = before.packed;
  for (int oc = 0; oc < L.out_c; ++oc) {
    const int g = oc / L.group_out_c, row = oc % L.group_out_c;
    const int64_t at = static_cast<int64_t>(oc) * L.k;
    const int8_t* want = target + at;
    const int8_t* had = before.weights.data() + at;
    // weights_t is [groups][k][group_out_c]: this row's weight kk is column[kk * group_out_c].
    int8_t* column = L.weights_t.data() + static_cast<int64_t>(g) * L.k * L.group_out_c + row;
    PackedWeights* packed = L.packed.empty() ? nullptr : &L.packed[g];
    auto patch = [&](int kk) {
      column[static_cast<int64_t>(kk) * L.group_out_c] = want[kk];
      if (packed != nullptr) packed->Set(row, kk, want[kk]);
    };
    int kk = 0;
    for (; kk + 16 <= L.k; kk += 16) {
      for (unsigned differ = DifferBits16(want + kk, had + kk); differ != 0; differ &= differ - 1) {
        patch(kk + __builtin_ctz(differ));
      }
    }
    for (; kk < L.k; ++kk) {
      if (want[kk] != had[kk]) patch(kk);
    }
  }
}

}  // namespace

LayerExposure MacLayer::Exposure() const {
  LayerExposure e;
  e.elements[static_cast<int>(FaultSite::kWeights)] = static_cast<uint64_t>(weight_count());
  e.elements[static_cast<int>(FaultSite::kInputs)] = static_cast<uint64_t>(in_elements());
  e.elements[static_cast<int>(FaultSite::kHidden)] = static_cast<uint64_t>(out_elements());
  e.elements[static_cast<int>(FaultSite::kOutputs)] = static_cast<uint64_t>(out_elements());
  return e;
}

Result<std::unique_ptr<CompiledModel>> CompiledModel::Compile(pb::QuantizedModel model,
                                                              const CompiledModel* previous) {
  std::unique_ptr<CompiledModel> compiled(new CompiledModel());
  compiled->model_ = std::move(model);
  R2F_RETURN_IF_ERROR(compiled->FormatAndShapes());
  R2F_RETURN_IF_ERROR(compiled->Build(/*kernels=*/true, previous));
  return compiled;
}

Status CompiledModel::Check(pb::QuantizedModel* model) {
  // Moved in and back out, so that checking a large model copies nothing.
  CompiledModel checked;
  checked.model_ = std::move(*model);
  Status st = checked.FormatAndShapes();
  if (st.ok()) st = checked.Build(/*kernels=*/false);
  *model = std::move(checked.model_);
  return st;
}

Status CompiledModel::FormatAndShapes() {
  if (model_.format_version() != kQuantizedModelFormatVersion) {
    return Status::InvalidArgument(
        "quantized model: format_version " + std::to_string(model_.format_version()) +
        " is not supported (expected " + std::to_string(kQuantizedModelFormatVersion) + ")");
  }
  return InferShapes(model_.mutable_graph())
      .WithContext("quantized model graph '" + model_.graph().name() + "'");
}

Status CompiledModel::Build(bool kernels, const CompiledModel* previous) {
  const pb::Graph& graph = model_.graph();
  const int num_nodes = graph.nodes_size();

  // Fractional bits: one per node, in a sane range.
  for (int i = 0; i < num_nodes; ++i) {
    const pb::Node& node = graph.nodes(i);
    if (i >= model_.activation_frac_size()) {
      return NodeError(node, "missing activation_frac (the model has " +
                                 std::to_string(model_.activation_frac_size()) + " entries for " +
                                 std::to_string(num_nodes) + " nodes)");
    }
    if (!FracInRange(model_.activation_frac(i))) {
      return NodeError(node, "activation_frac " + std::to_string(model_.activation_frac(i)) +
                                 " outside [-" + std::to_string(kMaxFrac) + ", " +
                                 std::to_string(kMaxFrac) + "]");
    }
  }
  if (model_.activation_frac_size() != num_nodes) {
    return Status::InvalidArgument("quantized model: activation_frac has " +
                                   std::to_string(model_.activation_frac_size()) + " entries for " +
                                   std::to_string(num_nodes) + " nodes");
  }

  // Input quantizer table.
  const pb::Shape& input_shape = graph.input_shape();
  const int64_t lut_size = static_cast<int64_t>(input_shape.dims(0)) * 256;
  if (static_cast<int64_t>(model_.input_lut().size()) != lut_size) {
    return Status::InvalidArgument("quantized model: input_lut has " +
                                   std::to_string(model_.input_lut().size()) +
                                   " entries, expected " + std::to_string(lut_size) + " (" +
                                   std::to_string(input_shape.dims(0)) + " channels x 256)");
  }
  input_lut_.assign(model_.input_lut().begin(), model_.input_lut().end());

  // Parameters: exactly one QuantizedLayer per MAC layer.
  std::vector<int> layer_of_node(num_nodes, -1);
  for (int li = 0; li < model_.layers_size(); ++li) {
    const uint32_t id = model_.layers(li).node_id();
    if (id >= static_cast<uint32_t>(num_nodes)) {
      return Status::InvalidArgument("quantized model: layers[" + std::to_string(li) +
                                     "] refers to node " + std::to_string(id) +
                                     ", which does not exist");
    }
    if (!IsMacLayer(graph.nodes(id))) {
      return NodeError(graph.nodes(id), "has parameters (layers[" + std::to_string(li) +
                                            "]) but is not a conv or linear layer");
    }
    if (layer_of_node[id] >= 0) {
      return LayerError(graph.nodes(id), "has two parameter entries (layers[" +
                                             std::to_string(layer_of_node[id]) + "] and layers[" +
                                             std::to_string(li) + "])");
    }
    layer_of_node[id] = li;
  }

  nodes_.resize(num_nodes);
  std::vector<int> quantized_layer;  // per MAC layer: its index in model_.layers()
  for (int i = 0; i < num_nodes; ++i) {
    const pb::Node& node = graph.nodes(i);
    NodeInfo& info = nodes_[i];
    info.id = node.id();
    info.name = node.name();
    info.op = node.op();
    info.inputs.assign(node.inputs().begin(), node.inputs().end());
    info.dims.assign(node.output_shape().dims().begin(), node.output_shape().dims().end());
    info.elements = NumElements(node.output_shape());
    info.frac = model_.activation_frac(i);
    info.relu = node.activation() == pb::ACT_RELU;
    if (node.activation() != pb::ACT_NONE && node.activation() != pb::ACT_RELU) {
      return NodeError(node, "unknown activation " + std::to_string(node.activation()));
    }
    if (info.relu && !IsMacLayer(node) && node.op() != pb::OP_ADD) {
      return NodeError(node, "a ReLU is only supported on conv, linear and add nodes");
    }
    if (info.elements > std::numeric_limits<int32_t>::max()) {
      return NodeError(node, "output too large: " + ShapeToString(node.output_shape()));
    }

    auto input_frac = [&](int j) { return model_.activation_frac(node.inputs(j)); };
    switch (node.op()) {
      case pb::OP_INPUT:
        break;
      case pb::OP_CONV:
      case pb::OP_LINEAR:
        break;  // below
      case pb::OP_ADD: {
        const int m = std::max(input_frac(0), input_frac(1));
        for (int j = 0; j < 2; ++j) {
          if (m - input_frac(j) > kMaxAddAlignShift) {
            return NodeError(node, "input fracs " + std::to_string(input_frac(0)) + " and " +
                                       std::to_string(input_frac(1)) + " differ by more than " +
                                       std::to_string(kMaxAddAlignShift));
          }
        }
        const int out_shift = m - info.frac;
        if (out_shift > kMaxRightShift || out_shift < -kMaxAddAlignShift) {
          return NodeError(node, "requantisation shift " + std::to_string(out_shift) +
                                     " (max input frac " + std::to_string(m) + " - output frac " +
                                     std::to_string(info.frac) + ") outside [-" +
                                     std::to_string(kMaxAddAlignShift) + ", " +
                                     std::to_string(kMaxRightShift) + "]");
        }
        break;
      }
      case pb::OP_CONCAT: {
        int min_frac = input_frac(0);
        for (int j = 1; j < node.inputs_size(); ++j) min_frac = std::min(min_frac, input_frac(j));
        if (info.frac != min_frac) {
          return NodeError(node, "activation_frac " + std::to_string(info.frac) +
                                     " must equal the smallest input frac " +
                                     std::to_string(min_frac) + " (docs/quantization.md)");
        }
        for (int j = 0; j < node.inputs_size(); ++j) {
          if (input_frac(j) - info.frac > kMaxRightShift) {
            return NodeError(node, "input " + std::to_string(j) + " frac " +
                                       std::to_string(input_frac(j)) + " is more than " +
                                       std::to_string(kMaxRightShift) + " above the output's");
          }
        }
        break;
      }
      default: {
        // Pooling, shuffle, flatten and slice keep their input's scale.
        if (info.frac != input_frac(0)) {
          return NodeError(node, "activation_frac " + std::to_string(info.frac) +
                                     " must equal its input's " + std::to_string(input_frac(0)) +
                                     " (a " + OpName(node.op()) + " does not rescale)");
        }
        if (node.op() == pb::OP_MAXPOOL || node.op() == pb::OP_AVGPOOL) {
          info.pool_kernel = static_cast<int>(node.pool().kernel());
          info.pool_stride = static_cast<int>(node.pool().stride());
          info.pool_pad = static_cast<int>(node.pool().pad());
        } else if (node.op() == pb::OP_CHANNEL_SHUFFLE) {
          info.shuffle_groups = static_cast<int>(node.shuffle().groups());
        } else if (node.op() == pb::OP_SLICE) {
          info.slice_begin = static_cast<int>(node.slice().begin());
          info.slice_end = static_cast<int>(node.slice().end());
        }
        break;
      }
    }
    if (!IsMacLayer(node)) continue;

    // A MAC layer.
    if (layer_of_node[i] < 0) return LayerError(node, "has no parameters in the model");
    const pb::QuantizedLayer& q = model_.layers(layer_of_node[i]);
    const pb::Shape& in_shape = graph.nodes(node.inputs(0)).output_shape();
    MacLayer L;
    L.node_id = node.id();
    L.mac_index = static_cast<int>(mac_layers_.size());
    L.name = node.name();
    L.input_node = node.inputs(0);
    L.relu = info.relu;
    L.in_frac = input_frac(0);
    L.out_frac = info.frac;
    if (node.op() == pb::OP_CONV) {
      const pb::ConvAttr& c = node.conv();
      if (c.batch_norm()) {
        return LayerError(node,
                          "batch_norm is set: BatchNorm must be folded into the weights "
                          "before export");
      }
      L.in_c = static_cast<int>(in_shape.dims(0));
      L.in_h = static_cast<int>(in_shape.dims(1));
      L.in_w = static_cast<int>(in_shape.dims(2));
      L.out_c = static_cast<int>(c.out_channels());
      L.out_h = static_cast<int>(info.dims[1]);
      L.out_w = static_cast<int>(info.dims[2]);
      L.kernel_h = static_cast<int>(c.kernel_h());
      L.kernel_w = static_cast<int>(c.kernel_w());
      L.stride_h = static_cast<int>(c.stride_h());
      L.stride_w = static_cast<int>(c.stride_w());
      L.pad_h = static_cast<int>(c.pad_h());
      L.pad_w = static_cast<int>(c.pad_w());
      L.groups = static_cast<int>(c.groups());
    } else {
      L.in_c = static_cast<int>(in_shape.dims(0));
      L.in_h = L.in_w = 1;
      L.out_c = static_cast<int>(node.linear().out_features());
      L.out_h = L.out_w = 1;
    }
    L.group_in_c = L.in_c / L.groups;
    L.group_out_c = L.out_c / L.groups;
    L.k = L.group_in_c * L.kernel_h * L.kernel_w;
    if (L.k > (1 << 17)) {
      return LayerError(node, "reduction length " + std::to_string(L.k) +
                                  " exceeds 2^17: the int32 accumulator could overflow");
    }

    const int64_t expected_weights = L.weight_count();
    if (static_cast<int64_t>(q.weights().size()) != expected_weights) {
      return LayerError(node, "expected " + std::to_string(expected_weights) + " weights, got " +
                                  std::to_string(q.weights().size()));
    }
    if (q.bias_size() != L.out_c) {
      return LayerError(node, "expected " + std::to_string(L.out_c) + " biases, got " +
                                  std::to_string(q.bias_size()));
    }
    if (q.weight_frac_size() != L.out_c) {
      return LayerError(node, "expected " + std::to_string(L.out_c) +
                                  " weight_frac entries (one per output channel), got " +
                                  std::to_string(q.weight_frac_size()));
    }
    // |sum of k products| <= k * 2^14; with the bias it must stay inside int32.
    const int64_t bias_limit = int64_t{std::numeric_limits<int32_t>::max()} - int64_t{L.k} * 16384;
    L.shift.resize(L.out_c);
    for (int c = 0; c < L.out_c; ++c) {
      if (!FracInRange(q.weight_frac(c))) {
        return LayerError(node, "weight_frac[" + std::to_string(c) +
                                    "] = " + std::to_string(q.weight_frac(c)) + " out of range");
      }
      const int shift = L.in_frac + q.weight_frac(c) - L.out_frac;
      if (shift > kMaxRightShift || shift < -kMaxMacLeftShift) {
        return LayerError(node, "requantisation shift of channel " + std::to_string(c) + " is " +
                                    std::to_string(shift) + " (input frac " +
                                    std::to_string(L.in_frac) + " + weight frac " +
                                    std::to_string(q.weight_frac(c)) + " - output frac " +
                                    std::to_string(L.out_frac) + "), outside [-" +
                                    std::to_string(kMaxMacLeftShift) + ", " +
                                    std::to_string(kMaxRightShift) + "]");
      }
      if (std::llabs(q.bias(c)) > bias_limit) {
        return LayerError(node, "bias[" + std::to_string(c) + "] = " + std::to_string(q.bias(c)) +
                                    " could overflow the int32 accumulator (limit " +
                                    std::to_string(bias_limit) + ")");
      }
      L.shift[c] = shift;
    }
    L.bias.assign(q.bias().begin(), q.bias().end());
    // Per-group GEMMs this small leave the GEMM kernel's lanes idle; loop directly instead.
    L.direct_kernel = L.groups > 1 && (L.group_out_c < kRowBlock || L.k < 16);
    info.mac_index = L.mac_index;
    mac_layer_ids_.push_back(L.node_id);
    mac_layers_.push_back(std::move(L));
    quantized_layer.push_back(layer_of_node[i]);
  }
  if (kernels) PrepareKernels(quantized_layer, previous);
  return Status::Ok();
}

// Weights as the kernels read them: copied, transposed per group and packed. Layers are
// independent, so they are prepared on the OpenMP threads, largest first: a deployModel builds
// a whole new model, and on the device and the server alike this was ~80% of the ~1 ms build
// (before layers were reused from the previous model: ReusablePreparation).
void CompiledModel::PrepareKernels(const std::vector<int>& quantized_layer,
                                   const CompiledModel* previous) {
  std::vector<size_t> order(mac_layers_.size());
  for (size_t m = 0; m < order.size(); ++m) order[m] = m;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return mac_layers_[a].weight_count() > mac_layers_[b].weight_count();
  });
  std::atomic<int> reused{0};
  ParallelFor(static_cast<int64_t>(order.size()), [&](int64_t j) {
    MacLayer& L = mac_layers_[order[j]];
    const pb::QuantizedLayer& q = model_.layers(quantized_layer[order[j]]);
    if (const MacLayer* before = ReusablePreparation(L, previous)) {
      PatchPreparation(*before, q.weights(), L);
      reused.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    L.weights.assign(q.weights().begin(), q.weights().end());
    L.weights_t.resize(L.weights.size());
    TransposeGroups(L);
    if (L.direct_kernel) return;
    for (int g = 0; g < L.groups; ++g) {
      L.packed.push_back(PackWeights(
          L.weights.data() + static_cast<int64_t>(g) * L.group_out_c * L.k, L.group_out_c, L.k));
    }
  });
  reused_layers_ = reused.load();
}

}  // namespace r2f::accel
