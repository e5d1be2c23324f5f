#include "server/retrain/reconstruct.h"

#include <algorithm>
#include <chrono>

#include "common/base/checksum.h"
#include "common/codec/increment_codec.h"
#include "common/ir/graph.h"

namespace r2f {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// What the reply holds, checked against the model before anything is decoded.
struct ReplyLayers {
  uint64_t model_version = 0;
  const pb::Graph* graph = nullptr;       // the model's
  std::vector<uint32_t> mac_ids;          // its MAC layers' node ids, in graph order
  std::vector<EncodedLayerView> encoded;  // per MAC layer, into the reply
  accel::ImageBatch images;               // the reply's inputs
  bool need_clean = false;                // some layer is an increment
};

// Checks the reply against `model` and shapes out->layers (one tensor per MAC layer).
Result<ReplyLayers> CheckReply(const pb::DataReply& reply, const pb::QuantizedModel& qm,
                               Reconstruction* out) {
  if (reply.model_version() != qm.model_version()) {
    return Status::InvalidArgument("data reply was computed with model version " +
                                   std::to_string(reply.model_version()) + ", server holds " +
                                   std::to_string(qm.model_version()));
  }
  ReplyLayers r;
  r.model_version = qm.model_version();
  r.graph = &qm.graph();
  r.mac_ids = MacLayerIds(qm.graph());
  const std::vector<uint32_t>& macs = r.mac_ids;
  if (reply.layers_size() != static_cast<int>(macs.size())) {
    return Status::InvalidArgument("data reply has " + std::to_string(reply.layers_size()) +
                                   " layers, the model " + std::to_string(macs.size()));
  }
  const int batch = reply.sample_ids_size();
  const pb::Graph& graph = qm.graph();
  const size_t image_bytes = static_cast<size_t>(NumElements(graph.input_shape()));
  if (batch == 0 || reply.inputs().size() != image_bytes * batch) {
    return Status::InvalidArgument("data reply: " + std::to_string(reply.inputs().size()) +
                                   " input bytes for " + std::to_string(batch) + " samples");
  }
  if (!pb::IncrementReference_IsValid(reply.reference())) {
    return Status::InvalidArgument("data reply: unknown increment reference " +
                                   std::to_string(reply.reference()));
  }
  out->layers.resize(macs.size());
  r.encoded.resize(macs.size());
  for (size_t i = 0; i < macs.size(); ++i) {
    const pb::EncodedLayer& l = reply.layers(static_cast<int>(i));
    const pb::Node& node = graph.nodes(macs[i]);
    if (l.node_id() != macs[i]) {
      return Status::InvalidArgument("data reply: layer " + std::to_string(i) + " is node " +
                                     std::to_string(l.node_id()) + ", expected " +
                                     std::to_string(macs[i]));
    }
    if (l.encoding() > static_cast<uint32_t>(Encoding::kRawZeroMap)) {
      return Status::InvalidArgument("data reply: layer " + std::to_string(l.node_id()) +
                                     " has unknown encoding " + std::to_string(l.encoding()));
    }
    accel::Int8Tensor& t = out->layers[i];
    t.batch = batch;
    t.dims.assign(node.output_shape().dims().begin(), node.output_shape().dims().end());
    t.frac = qm.activation_frac(macs[i]);
    const size_t n = static_cast<size_t>(t.PerImage()) * batch;
    t.data.resize(n);
    if (l.elements() != n) {
      return Status::InvalidArgument("data reply: layer " + std::to_string(l.node_id()) + " has " +
                                     std::to_string(l.elements()) + " elements, expected " +
                                     std::to_string(n));
    }
    r.encoded[i] = EncodedLayerOf(l);
    const bool increment = IsIncrement(r.encoded[i].encoding);
    out->increment_layers += increment;
    r.need_clean |= increment;
  }
  r.images.pixels = reinterpret_cast<const uint8_t*>(reply.inputs().data());
  r.images.batch = batch;
  r.images.sample_ids.assign(reply.sample_ids().begin(), reply.sample_ids().end());
  return r;
}

// The simulator `clean` returns, checked against the model the reply was checked with.
Result<accel::Accelerator*> SimulatorFor(const ReplyLayers& r, const CleanSimulator& clean) {
  R2F_ASSIGN_OR_RETURN(accel::Accelerator * simulator, clean());
  if (simulator->model().model_version() != r.model_version ||
      simulator->mac_layers() != r.mac_ids) {
    return Status::Internal("rebuild: the clean simulator is of model version " +
                            std::to_string(simulator->model().model_version()) +
                            ", the reply was checked against version " +
                            std::to_string(r.model_version));
  }
  return simulator;
}

std::string LayerContext(const ReplyLayers& r, size_t i) {
  const uint32_t id = r.mac_ids[i];
  return "data reply: layer " + std::to_string(id) + " '" + r.graph->nodes(id).name() + "'";
}

// Layer-local reference: an increment is y - f_l(x_l) with x_l the faulty chain's own input to
// the layer, so the base is the clean layer function of the *reconstructed* input. One clean
// pass in graph order in which every MAC layer's output is replaced by its decoded value before
// later nodes read it: where the device's vote was exact, every layer comes out bit for bit as
// the device's faulty chain.
Status RebuildLocal(const ReplyLayers& r, accel::Accelerator& model, Reconstruction* out) {
  const auto start = std::chrono::steady_clock::now();
  double decode_s = 0;
  accel::MacOutputHook hook = [&](size_t i, int8_t* output, int64_t n) -> Status {
    const auto t0 = std::chrono::steady_clock::now();
    accel::Int8Tensor& t = out->layers[i];
    if (static_cast<size_t>(n) != t.data.size()) {
      return Status::Internal(LayerContext(r, i) + ": the clean run has " + std::to_string(n) +
                              " values, expected " + std::to_string(t.data.size()));
    }
    // In place: raw layers ignore the base, increment layers add to it.
    R2F_RETURN_IF_ERROR(
        Decode(r.encoded[i], output, output, t.data.size()).WithContext(LayerContext(r, i)));
    std::copy(output, output + n, t.data.begin());
    decode_s += SecondsSince(t0);
    return Status::Ok();
  };
  R2F_RETURN_IF_ERROR(
      model.InferWithOverrides(r.images, hook, /*keep_layer_outputs=*/false).status());
  out->decode_seconds = decode_s;
  out->recompute_seconds = SecondsSince(start) - decode_s;
  return Status::Ok();
}

// Chain reference (the paper's): every increment is against the clean chain g of the received
// inputs, one clean forward for all layers.
Status RebuildChain(const ReplyLayers& r, const CleanSimulator& clean_simulator,
                    Reconstruction* out) {
  accel::InferenceResult clean;
  if (r.need_clean) {
    R2F_ASSIGN_OR_RETURN(accel::Accelerator * simulator, SimulatorFor(r, clean_simulator));
    auto start = std::chrono::steady_clock::now();
    R2F_ASSIGN_OR_RETURN(clean,
                         simulator->Infer(r.images, accel::FaultConfig{}, accel::TmrConfig{}, 0,
                                          /*keep_layer_outputs=*/true));
    out->recompute_seconds = SecondsSince(start);
  }
  auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < out->layers.size(); ++i) {
    accel::Int8Tensor& t = out->layers[i];
    const int8_t* base =
        IsIncrement(r.encoded[i].encoding) ? clean.layer_outputs[i].data.data() : nullptr;
    R2F_RETURN_IF_ERROR(
        Decode(r.encoded[i], base, t.data.data(), t.data.size()).WithContext(LayerContext(r, i)));
  }
  out->decode_seconds = SecondsSince(start);
  return Status::Ok();
}

}  // namespace

EncodedLayerView EncodedLayerOf(const pb::EncodedLayer& layer) {
  EncodedLayerView e;
  e.encoding = static_cast<Encoding>(layer.encoding());
  e.elements = static_cast<uint32_t>(layer.elements());
  e.bytes = layer.data();
  e.patch = layer.patch();
  e.patched = layer.patched();
  return e;
}

Result<Reconstruction> ReconstructLayers(const pb::DataReply& reply, accel::Accelerator& model) {
  return ReconstructLayers(reply, model.model(),
                           [&model]() -> Result<accel::Accelerator*> { return &model; });
}

Result<Reconstruction> ReconstructLayers(const pb::DataReply& reply,
                                         const pb::QuantizedModel& model,
                                         const CleanSimulator& clean) {
  Reconstruction out;
  R2F_ASSIGN_OR_RETURN(ReplyLayers r, CheckReply(reply, model, &out));
  const bool local =
      reply.reference() == pb::REFERENCE_LOCAL || reply.reference() == pb::REFERENCE_LOCAL_EXACT;
  if (r.need_clean && local) {
    R2F_ASSIGN_OR_RETURN(accel::Accelerator * simulator, SimulatorFor(r, clean));
    R2F_RETURN_IF_ERROR(RebuildLocal(r, *simulator, &out));
  } else {
    R2F_RETURN_IF_ERROR(RebuildChain(r, clean, &out));
  }
  // The device's checksum of its true outputs: a layer whose rebuild differs (the approximate
  // local reference where a vote failed, or damage we did not catch) is counted.
  for (size_t i = 0; i < out.layers.size(); ++i) {
    const pb::EncodedLayer& layer = reply.layers(static_cast<int>(i));
    const std::vector<int8_t>& d = out.layers[i].data;
    if (layer.has_output_crc32() && Crc32(std::string_view(reinterpret_cast<const char*>(d.data()),
                                                           d.size())) != layer.output_crc32()) {
      ++out.mismatched_layers;
    }
  }
  return out;
}

}  // namespace r2f
