#include "client/layer_encoder.h"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <string>
#include <string_view>

#include "accel_sim/parallel_for.h"
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

Status LayerEncoder::EncodeAll(const std::vector<LayerOutputs>& layers,
                               google::protobuf::RepeatedPtrField<pb::EncodedLayer>* out) {
  const int n = static_cast<int>(layers.size());
  std::vector<pb::EncodedLayer*> slots;
  for (int l = 0; l < n; ++l) slots.push_back(out->Add());
  // Largest first, so that no big layer is left for the end while the other thread idles.
  std::vector<int> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return layers[static_cast<size_t>(a)].faulty->size() >
           layers[static_cast<size_t>(b)].faulty->size();
  });
  std::vector<LayerStats> stats(static_cast<size_t>(n));
  std::vector<Status> status(static_cast<size_t>(n));
  const auto start = Clock::now();
  // On the OpenMP threads; an exception (an allocation failing) comes back here instead of
  // ending the process from inside the parallel region.
  accel::ParallelFor(n, [&](int64_t k) {
    const size_t l = static_cast<size_t>(order[static_cast<size_t>(k)]);
    status[l] = Encode(layers[l], slots[l], &stats[l]);
  });
  const double wall = SecondsSince(start);
  for (int l = 0; l < n; ++l) {
    if (!status[static_cast<size_t>(l)].ok()) {
      return status[static_cast<size_t>(l)].WithContext(
          "encoding layer " + std::to_string(layers[static_cast<size_t>(l)].node_id));
    }
  }
  double similarity_s = 0, codec_s = 0;
  for (const LayerStats& s : stats) {
    similarity_s += s.similarity_s;
    codec_s += s.codec_s;
    patched_ += s.patched;
    disagreeing_ += s.disagreed;
  }
  const double busy = similarity_s + codec_s;
  const double share = busy > 0 ? similarity_s / busy : 0.0;
  increment_s_ += wall * share;
  codec_s_ += wall * (1.0 - share);
  return Status::Ok();
}

Status LayerEncoder::Encode(const LayerOutputs& layer, pb::EncodedLayer* out,
                            LayerStats* stats) const {
  const int8_t* y = layer.faulty->data();
  const size_t n = layer.faulty->size();
  const int8_t* v = layer.reference ? layer.reference->data() : nullptr;
  const std::vector<uint8_t>* mask = layer.mask;
  out->set_node_id(layer.node_id);
  out->set_elements(n);
  if (request_.verify_rebuild()) {
    out->set_has_output_crc32(true);
    out->set_output_crc32(Crc32(std::string_view(reinterpret_cast<const char*>(y), n)));
  }
  const pb::LayerEncodingPolicy policy = request_.policy();
  const bool exact = request_.reference() == pb::REFERENCE_LOCAL_EXACT && mask != nullptr &&
                     v != nullptr && policy != pb::ENCODE_RAW;
  if (exact && mask->size() != n) {
    return Status::Internal("disagreement mask of " + std::to_string(mask->size()) + " flags for " +
                            std::to_string(n) + " outputs");
  }
  Result<EncodedLayer> enc = Status::Internal("unset");
  if (exact) {
    // The exact method chooses per layer and batch among its exact forms (docs/retraining.md).
    // Its one pass over the layer also gives the similarity and whether the replicas
    // disagreed anywhere, so their time is in codec_s.
    const auto t0 = Clock::now();
    ExactScan scan;
    enc = EncodeExact(y, v, mask->data(), n, &scan);
    stats->codec_s = SecondsSince(t0);
    out->set_similarity(n == 0 ? 1.0 : static_cast<double>(scan.equal) / static_cast<double>(n));
    stats->disagreed = scan.flagged > 0;
  } else {
    auto t0 = Clock::now();
    const double similarity = v ? Similarity(y, v, n) : 0.0;
    stats->similarity_s = SecondsSince(t0);
    out->set_similarity(similarity);
    t0 = Clock::now();
    const bool increment =
        v != nullptr &&
        ((policy == pb::ENCODE_OFFLINE && increment_layers_.count(layer.node_id) > 0) ||
         (policy == pb::ENCODE_ADAPTIVE && similarity >= request_.similarity_threshold()));
    if (!increment) {
      enc = EncodeRaw(y, n, request_.lz4_raw());
    } else if (policy == pb::ENCODE_OFFLINE) {
      enc = EncodeIncrement(y, v, n, IncrementFormat::kSmallest);
    } else {
      enc = EncodeSmallest(y, v, n, request_.lz4_raw());
    }
    stats->codec_s = SecondsSince(t0);
    if (mask != nullptr) stats->disagreed = std::find(mask->begin(), mask->end(), 1) != mask->end();
  }
  if (!enc.ok()) return enc.status();
  if (mask != nullptr) out->set_disagreed(stats->disagreed);
  out->set_encoding(static_cast<uint32_t>(enc->encoding));
  out->set_data(std::move(enc->bytes));
  out->set_patch(std::move(enc->patch));
  out->set_patched(enc->patched);
  stats->patched = enc->patched;
  return Status::Ok();
}

}  // namespace r2f
