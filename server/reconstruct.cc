#include "server/reconstruct.h"

#include <chrono>

#include "common/graph.h"
#include "common/increment_codec.h"

namespace r2f {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

Result<Reconstruction> ReconstructLayers(const pb::DataReply& reply, accel::Accelerator& model) {
  const pb::QuantizedModel& qm = model.model();
  if (reply.model_version() != qm.model_version()) {
    return Status::InvalidArgument("data reply was computed with model version " +
                                   std::to_string(reply.model_version()) + ", server holds " +
                                   std::to_string(qm.model_version()));
  }
  const std::vector<uint32_t>& macs = model.mac_layers();
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

  Reconstruction out;
  bool need_clean = false;
  for (const pb::EncodedLayer& l : reply.layers()) {
    need_clean |= IsIncrement(static_cast<Encoding>(l.encoding()));
  }
  accel::InferenceResult clean;
  if (need_clean) {
    auto start = std::chrono::steady_clock::now();
    accel::ImageBatch images;
    images.pixels = reinterpret_cast<const uint8_t*>(reply.inputs().data());
    images.batch = batch;
    images.sample_ids.assign(reply.sample_ids().begin(), reply.sample_ids().end());
    R2F_ASSIGN_OR_RETURN(clean, model.Infer(images, accel::FaultConfig{}, accel::TmrConfig{}, 0,
                                            /*keep_layer_outputs=*/true));
    out.recompute_seconds = SecondsSince(start);
  }

  auto start = std::chrono::steady_clock::now();
  out.layers.resize(macs.size());
  for (size_t i = 0; i < macs.size(); ++i) {
    const pb::EncodedLayer& l = reply.layers(static_cast<int>(i));
    const pb::Node& node = graph.nodes(macs[i]);
    if (l.node_id() != macs[i]) {
      return Status::InvalidArgument("data reply: layer " + std::to_string(i) + " is node " +
                                     std::to_string(l.node_id()) + ", expected " +
                                     std::to_string(macs[i]));
    }
    if (l.encoding() > static_cast<uint32_t>(Encoding::kIncrementSparse)) {
      return Status::InvalidArgument("data reply: layer " + std::to_string(l.node_id()) +
                                     " has unknown encoding " + std::to_string(l.encoding()));
    }
    accel::Int8Tensor& t = out.layers[i];
    t.batch = batch;
    t.dims.assign(node.output_shape().dims().begin(), node.output_shape().dims().end());
    t.frac = qm.activation_frac(macs[i]);
    const size_t n = static_cast<size_t>(t.PerImage()) * batch;
    t.data.resize(n);
    EncodedLayer encoded;
    encoded.encoding = static_cast<Encoding>(l.encoding());
    if (l.elements() != n) {
      return Status::InvalidArgument("data reply: layer " + std::to_string(l.node_id()) + " has " +
                                     std::to_string(l.elements()) + " elements, expected " +
                                     std::to_string(n));
    }
    encoded.elements = static_cast<uint32_t>(n);
    encoded.bytes = l.data();
    const bool increment = IsIncrement(encoded.encoding);
    out.increment_layers += increment;
    const int8_t* base = increment ? clean.layer_outputs[i].data.data() : nullptr;
    R2F_RETURN_IF_ERROR(Decode(encoded, base, t.data.data(), n)
                            .WithContext("data reply: layer " + std::to_string(l.node_id()) +
                                         " '" + node.name() + "'"));
  }
  out.decode_seconds = SecondsSince(start);
  return out;
}

}  // namespace r2f
