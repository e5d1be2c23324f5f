// Server side of the sparse-increment scheme (docs/retraining.md): rebuild the faulty chain's
// per-layer outputs from a training-mode DataReply. RAW layers arrive as they are; for an
// INCREMENT layer the server recomputes the clean output g from the received inputs with its
// own copy of the deployed model (accel_sim in clean mode, the same integers as the device) and
// adds the increment back: y = g + d (mod 256). With the layer-local reference
// (reply.reference() == REFERENCE_LOCAL) g of layer l is the clean layer function of the
// server's own reconstruction of the layer's input, so the layers are rebuilt in graph order in
// one clean pass (Accelerator::InferWithOverrides). Torch-free.
#pragma once

#include <functional>
#include <vector>

#include "accel_sim/accelerator.h"
#include "common/base/status.h"
#include "common/codec/increment_codec.h"
#include "r2f.pb.h"

namespace r2f {

struct Reconstruction {
  std::vector<accel::Int8Tensor> layers;  // per MAC layer, in graph order
  int increment_layers = 0;               // layers rebuilt from increments
  // Layers whose rebuild does not match the device's checksum of its outputs
  // (GetDataRequest.verify_rebuild): the approximate local reference where a vote failed, the
  // chain reference where the LW-TMR chain differs from the clean one, and the exact reference
  // where all three replicas computed the same wrong sum.
  int mismatched_layers = 0;
  double recompute_seconds = 0;  // clean forward for the increment layers
  double decode_seconds = 0;     // decompression and addition
};

// One layer of a reply as the codec reads it (encoding, elements, bytes and patch), a view into
// `layer`, which must outlive it; the encoding is not checked here (CheckReply does).
EncodedLayerView EncodedLayerOf(const pb::EncodedLayer& layer);

// `model` must be the model the reply was computed with (reply.model_version is checked).
Result<Reconstruction> ReconstructLayers(const pb::DataReply& reply, accel::Accelerator& model);

// The same with the simulator asked for only when some layer is an increment: `clean` returns
// the fault-free simulator of `model` (DeviceMirror::Clean; Internal if it is of another version
// or graph) and is not called for a reply of raw layers only (DRM), which needs no clean pass.
// `model` must have its output shapes inferred (InferShapes; DeviceMirror::Set does it).
using CleanSimulator = std::function<Result<accel::Accelerator*>()>;
Result<Reconstruction> ReconstructLayers(const pb::DataReply& reply,
                                         const pb::QuantizedModel& model,
                                         const CleanSimulator& clean);

}  // namespace r2f
