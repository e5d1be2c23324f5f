#include "client/layer_encoder.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <string_view>

#include "common/base/checksum.h"
#include "common/codec/increment_codec.h"
#include "common/codec/patch_codec.h"

namespace r2f {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

Status LayerEncoder::Encode(uint32_t node_id, const std::vector<int8_t>& faulty,
                            const std::vector<int8_t>* reference, const std::vector<uint8_t>* mask,
                            pb::EncodedLayer* out) {
  const int8_t* y = faulty.data();
  const size_t n = faulty.size();
  const int8_t* v = reference ? reference->data() : nullptr;
  out->set_node_id(node_id);
  out->set_elements(n);
  if (request_.verify_rebuild()) {
    out->set_has_output_crc32(true);
    out->set_output_crc32(Crc32(std::string_view(reinterpret_cast<const char*>(y), n)));
  }
  auto t0 = Clock::now();
  const double similarity = v ? Similarity(y, v, n) : 0.0;
  increment_s_ += SecondsSince(t0);
  out->set_similarity(similarity);

  t0 = Clock::now();
  const pb::LayerEncodingPolicy policy = request_.policy();
  const bool exact = request_.reference() == pb::REFERENCE_LOCAL_EXACT && mask != nullptr &&
                     v != nullptr && policy != pb::ENCODE_RAW;
  if (exact && mask->size() != n) {
    return Status::Internal("disagreement mask of " + std::to_string(mask->size()) + " flags for " +
                            std::to_string(n) + " outputs");
  }
  const bool increment =
      v != nullptr &&
      ((policy == pb::ENCODE_OFFLINE && increment_layers_.count(node_id) > 0) ||
       (policy == pb::ENCODE_ADAPTIVE && similarity >= request_.similarity_threshold()));
  Result<EncodedLayer> enc = Status::Internal("unset");
  if (exact) {
    // The exact method chooses per layer and batch among its exact forms (docs/retraining.md).
    enc = EncodeExact(y, v, mask->data(), n);
  } else if (!increment) {
    enc = EncodeRaw(y, n, request_.lz4_raw());
  } else if (policy == pb::ENCODE_OFFLINE) {
    enc = EncodeIncrement(y, v, n, IncrementFormat::kSmallest);
  } else {
    enc = EncodeSmallest(y, v, n, request_.lz4_raw());
  }
  codec_s_ += SecondsSince(t0);
  if (!enc.ok()) return enc.status();
  if (mask != nullptr) {
    const bool disagreed = std::find(mask->begin(), mask->end(), 1) != mask->end();
    out->set_disagreed(disagreed);
    disagreeing_ += disagreed;
  }
  out->set_encoding(static_cast<uint32_t>(enc->encoding));
  out->set_data(std::move(enc->bytes));
  out->set_patch(std::move(enc->patch));
  out->set_patched(enc->patched);
  patched_ += enc->patched;
  return Status::Ok();
}

}  // namespace r2f
