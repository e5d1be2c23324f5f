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

class LayerEncoder {
 public:
  // `request` and `increment_layers` (ENCODE_OFFLINE's layers) must outlive the encoder.
  LayerEncoder(const pb::GetDataRequest& request, const std::set<uint32_t>& increment_layers)
      : request_(request), increment_layers_(increment_layers) {}

  // Fills *out for MAC layer `node_id` with outputs `faulty`. `reference` (the TMR vote) is
  // null when the request runs none; `mask` (per output, 1 where the replicas disagreed) is
  // null unless the reference is REFERENCE_LOCAL_EXACT, and then has faulty.size() flags.
  Status Encode(uint32_t node_id, const std::vector<int8_t>& faulty,
                const std::vector<int8_t>* reference, const std::vector<uint8_t>* mask,
                pb::EncodedLayer* out);

  double increment_seconds() const { return increment_s_; }  // similarity
  double codec_seconds() const { return codec_s_; }          // compression
  uint64_t patched() const { return patched_; }              // elements in patches
  uint32_t disagreeing_layers() const { return disagreeing_; }

 private:
  const pb::GetDataRequest& request_;
  const std::set<uint32_t>& increment_layers_;
  double increment_s_ = 0, codec_s_ = 0;
  uint64_t patched_ = 0;
  uint32_t disagreeing_ = 0;
};

}  // namespace r2f
