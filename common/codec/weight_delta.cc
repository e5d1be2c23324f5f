#include "common/codec/weight_delta.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "common/base/checksum.h"
#include "common/codec/increment_codec.h"

namespace r2f {
namespace {

using google::protobuf::util::MessageDifferencer;

std::string LayerName(const pb::QuantizedModel& model, uint32_t node_id) {
  std::string name = "layer " + std::to_string(node_id);
  if (node_id < static_cast<uint32_t>(model.graph().nodes_size())) {
    name += " '" + model.graph().nodes(static_cast<int>(node_id)).name() + "'";
  }
  return name;
}

const int8_t* AsInt8(const std::string& bytes) {
  return reinterpret_cast<const int8_t*>(bytes.data());
}

template <typename Field>
bool SameRepeated(const Field& a, const Field& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

}  // namespace

uint32_t WeightsCrc32(const pb::QuantizedModel& model) {
  uint32_t crc = Crc32("");
  for (const pb::QuantizedLayer& layer : model.layers()) crc = Crc32Extend(crc, layer.weights());
  return crc;
}

Status CheckDeltaCompatible(const pb::QuantizedModel& base, const pb::QuantizedModel& target) {
  auto differ = [](const std::string& what) {
    return Status::InvalidArgument("models differ in " + what +
                                   ": only weights, biases, version and description may change "
                                   "in a weight delta");
  };
  if (base.format_version() != target.format_version()) return differ("format_version");
  if (!MessageDifferencer::Equals(base.graph(), target.graph())) return differ("the graph");
  if (!SameRepeated(base.activation_frac(), target.activation_frac())) {
    return differ("activation fractional bits");
  }
  if (base.input_lut() != target.input_lut()) return differ("the input table");
  if (!SameRepeated(base.input_mean(), target.input_mean()) ||
      !SameRepeated(base.input_std(), target.input_std())) {
    return differ("the input normalisation");
  }
  if (base.layers_size() != target.layers_size()) return differ("the number of layers");
  for (int i = 0; i < base.layers_size(); ++i) {
    const pb::QuantizedLayer& b = base.layers(i);
    const pb::QuantizedLayer& t = target.layers(i);
    const std::string name = LayerName(base, b.node_id());
    if (b.node_id() != t.node_id())
      return differ("the node id of layer entry " + std::to_string(i));
    if (b.weights().size() != t.weights().size()) return differ("the weight count of " + name);
    if (b.bias_size() != t.bias_size()) return differ("the bias length of " + name);
    if (!SameRepeated(b.weight_frac(), t.weight_frac())) {
      return differ("the weight fractional bits of " + name);
    }
  }
  return Status::Ok();
}

Result<pb::WeightDelta> MakeWeightDelta(const pb::QuantizedModel& base,
                                        const pb::QuantizedModel& target) {
  R2F_RETURN_IF_ERROR(CheckDeltaCompatible(base, target));
  if (base.model_version() == target.model_version()) {
    return Status::InvalidArgument("a weight delta needs two model versions, both are " +
                                   std::to_string(base.model_version()));
  }
  pb::WeightDelta delta;
  delta.set_base_version(base.model_version());
  delta.set_new_version(target.model_version());
  delta.set_description(target.description());
  delta.set_weights_crc32(WeightsCrc32(target));
  for (int i = 0; i < base.layers_size(); ++i) {
    const pb::QuantizedLayer& b = base.layers(i);
    const pb::QuantizedLayer& t = target.layers(i);
    const bool weights_changed = b.weights() != t.weights();
    const bool bias_changed = !SameRepeated(b.bias(), t.bias());
    if (!weights_changed && !bias_changed) continue;
    pb::LayerWeightDelta* out = delta.add_layers();
    out->set_node_id(t.node_id());
    if (weights_changed) {
      R2F_ASSIGN_OR_RETURN(EncodedLayer enc,
                           EncodeIncrement(AsInt8(t.weights()), AsInt8(b.weights()),
                                           t.weights().size(), IncrementFormat::kSmallest));
      out->set_encoding(static_cast<uint32_t>(enc.encoding));
      out->set_increment(std::move(enc.bytes));
    }
    if (bias_changed) *out->mutable_bias() = t.bias();
  }
  return delta;
}

Result<pb::QuantizedModel> ApplyWeightDelta(const pb::QuantizedModel& base,
                                            const pb::WeightDelta& delta) {
  if (delta.base_version() != base.model_version()) {
    return Status::InvalidArgument(
        "weight delta to version " + std::to_string(delta.new_version()) + " is against version " +
        std::to_string(delta.base_version()) + ", but the device holds version " +
        std::to_string(base.model_version()) + " (send the whole model)");
  }
  std::map<uint32_t, int> index_of;  // node id -> index in layers
  for (int i = 0; i < base.layers_size(); ++i) index_of[base.layers(i).node_id()] = i;

  pb::QuantizedModel model = base;
  std::vector<bool> seen(static_cast<size_t>(base.layers_size()), false);
  for (const pb::LayerWeightDelta& ld : delta.layers()) {
    auto it = index_of.find(ld.node_id());
    if (it == index_of.end()) {
      return Status::InvalidArgument("weight delta names node " + std::to_string(ld.node_id()) +
                                     ", which is not a MAC layer of the deployed model");
    }
    const std::string name = LayerName(base, ld.node_id());
    if (seen[it->second]) return Status::InvalidArgument("weight delta lists " + name + " twice");
    seen[it->second] = true;
    if (!ld.positions().empty() || !ld.values().empty()) {
      return Status::InvalidArgument("weight delta for " + name +
                                     " uses the unsupported positions/values form");
    }
    pb::QuantizedLayer* layer = model.mutable_layers(it->second);
    if (!ld.increment().empty()) {
      if (ld.encoding() > static_cast<uint32_t>(Encoding::kIncrementSparse)) {
        return Status::InvalidArgument("weight delta for " + name + ": unknown encoding " +
                                       std::to_string(ld.encoding()));
      }
      const std::string& old_weights = base.layers(it->second).weights();
      EncodedLayer enc;
      enc.encoding = static_cast<Encoding>(ld.encoding());
      enc.elements = static_cast<uint32_t>(old_weights.size());
      enc.bytes = ld.increment();
      std::string weights(old_weights.size(), '\0');
      Status st = Decode(enc, AsInt8(old_weights), reinterpret_cast<int8_t*>(weights.data()),
                         weights.size());
      if (!st.ok()) return st.WithContext("weight delta for " + name);
      layer->set_weights(std::move(weights));
    }
    if (ld.bias_size() > 0) {
      if (ld.bias_size() != layer->bias_size()) {
        return Status::InvalidArgument("weight delta for " + name + " has " +
                                       std::to_string(ld.bias_size()) + " biases, the layer " +
                                       std::to_string(layer->bias_size()));
      }
      *layer->mutable_bias() = ld.bias();
    }
  }
  const uint32_t crc = WeightsCrc32(model);
  if (crc != delta.weights_crc32()) {
    return Status::Corruption("weights after applying the delta to version " +
                              std::to_string(delta.new_version()) + " have CRC-32 " +
                              std::to_string(crc) + ", the delta promised " +
                              std::to_string(delta.weights_crc32()));
  }
  model.set_model_version(delta.new_version());
  model.set_description(delta.description());
  return model;
}

}  // namespace r2f
