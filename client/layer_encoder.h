// How the device sends each MAC layer of a training reply (docs/retraining.md): raw (DRM), an
// increment against the TMR reference by the request's threshold policy (APRM), or the exact
// method's smallest exact form with a patch where the replicas disagreed. Also the per-layer
// checksum of GetDataRequest.verify_rebuild, the similarity, and the timing and counts the
// reply reports.
#pragma once

#include <cstdint>
#include <set>
#include <vector>

#include "common/base/status.h"
#include "r2f.pb.h"

namespace r2f {

// One MAC layer's outputs for the encoder. `reference` (the TMR vote) is null when the request
// runs none; `mask` (per output, 1 where the replicas disagreed) is null unless the reference
// is REFERENCE_LOCAL_EXACT, and then has faulty->size() flags.
struct LayerOutputs {
  uint32_t node_id = 0;
  const std::vector<int8_t>* faulty = nullptr;
  const std::vector<int8_t>* reference = nullptr;
  const std::vector<uint8_t>* mask = nullptr;
};

class LayerEncoder {
 public:
  // `request` and `increment_layers` (ENCODE_OFFLINE's layers) must outlive the encoder.
  LayerEncoder(const pb::GetDataRequest& request, const std::set<uint32_t>& increment_layers)
      : request_(request), increment_layers_(increment_layers) {}

  // Appends one EncodedLayer per entry of `layers` to *out, in the same order. The layers are
  // encoded in parallel (OpenMP, largest first): between two forward passes the device's cores
  // would otherwise wait on one. The result does not depend on the thread count. On an error
  // *out is unspecified and the status names the first failing layer.
  Status EncodeAll(const std::vector<LayerOutputs>& layers,
                   google::protobuf::RepeatedPtrField<pb::EncodedLayer>* out);

  // Wall time of the encoding, split between the similarity and the compression in proportion
  // to the time the threads spent in each. The exact reference's codec computes the similarity
  // in its own pass over the layer: there all of it is compression.
  double increment_seconds() const { return increment_s_; }  // similarity
  double codec_seconds() const { return codec_s_; }          // compression
  uint64_t patched() const { return patched_; }              // elements in patches
  uint32_t disagreeing_layers() const { return disagreeing_; }

 private:
  struct LayerStats {
    double similarity_s = 0, codec_s = 0;
    uint64_t patched = 0;
    bool disagreed = false;
  };
  Status Encode(const LayerOutputs& layer, pb::EncodedLayer* out, LayerStats* stats) const;

  const pb::GetDataRequest& request_;
  const std::set<uint32_t>& increment_layers_;
  double increment_s_ = 0, codec_s_ = 0;
  uint64_t patched_ = 0;
  uint32_t disagreeing_ = 0;
};

}  // namespace r2f
