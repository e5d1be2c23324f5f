// Writes the seed corpus of the fuzz targets: small valid inputs (and a few near misses) for
// each, so that fuzzing starts from the formats and not from noise.
//
//   fuzz_make_corpus tests/fuzz/corpus      # writes corpus/{envelope,increment,model}/seed-*
//
// Deterministic: rerun it after a change of the Envelope, the codec or the model format and
// commit the result. Inputs the fuzzers found (regressions) live beside the seeds as
// corpus/<target>/regression-*, written by hand from the crash files; they are never
// overwritten here.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "common/base/checksum.h"
#include "common/codec/increment_codec.h"
#include "common/codec/patch_codec.h"
#include "common/codec/weight_delta.h"
#include "common/net/chunker.h"
#include "common/net/transport_message.h"
#include "r2f.pb.h"
#include "tests/fuzz/fuzz_models.h"

namespace {

using namespace r2f;

std::string g_root;
int g_written = 0;

void Write(const std::string& target, const std::string& name, const std::string& bytes) {
  const std::filesystem::path dir = std::filesystem::path(g_root) / target;
  std::filesystem::create_directories(dir);
  std::ofstream(dir / ("seed-" + name), std::ios::binary) << bytes;
  ++g_written;
}

// --- envelope: records of uint16 length + one MQTT payload -----------------------------------

std::string Record(const std::string& bytes) {
  std::string r;
  r.push_back(static_cast<char>(bytes.size() & 0xff));
  r.push_back(static_cast<char>(bytes.size() >> 8));
  return r + bytes;
}

std::vector<pb::Envelope> Chunks(pb::MessageKind kind, const std::string& device, uint64_t id,
                                 const std::string& payload, size_t chunk_bytes) {
  Message m;
  m.kind = kind;
  m.job_id = "job";
  m.request_id = id;
  m.device_id = device;
  m.payload = payload;
  return SplitIntoChunks(m, chunk_bytes).value();
}

std::string Records(const std::vector<pb::Envelope>& envs, const std::vector<size_t>& order) {
  std::string s;
  for (size_t i : order) s += Record(envs.at(i).SerializeAsString());
  return s;
}

std::string Payload(size_t n, int salt) {
  std::string p(n, '\0');
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<char>(i * 31 + salt);
  return p;
}

void EnvelopeSeeds() {
  auto one = Chunks(pb::MSG_ACK, "dev-1", 1, "ack", 128);
  Write("envelope", "single-ack", Records(one, {0}));
  auto three = Chunks(pb::MSG_DATA, "dev-1", 2, Payload(300, 1), 100);
  Write("envelope", "three-in-order", Records(three, {0, 1, 2}));
  Write("envelope", "three-reversed-duplicated", Records(three, {2, 1, 1, 0}));
  auto other = Chunks(pb::MSG_DATA, "dev-2", 3, Payload(250, 2), 100);
  std::string interleaved;
  for (size_t i = 0; i < 3; ++i) {
    interleaved += Record(three[i].SerializeAsString()) + Record(other[i].SerializeAsString());
  }
  Write("envelope", "two-devices-interleaved", interleaved);
  Write("envelope", "error-reply",
        Records(Chunks(pb::MSG_ERROR, "dev-1", 4,
                       EncodeErrorReply(Status::InvalidArgument("bad"), pb::MSG_GET_DATA), 128),
                {0}));
  Write("envelope", "status", Records(Chunks(pb::MSG_STATUS, "dev-1", 0, "online", 128), {0}));
  Write("envelope", "empty-payload", Records(Chunks(pb::MSG_SET_AIOT_MODE, "d", 5, "", 128), {0}));
  Write("envelope", "many-small-chunks",
        Records(Chunks(pb::MSG_DEPLOY_MODEL, "dev-1", 6, Payload(64, 3), 1), [] {
          std::vector<size_t> o;
          for (size_t i = 0; i < 64; ++i) o.push_back(i);
          return o;
        }()));
  auto bad_crc = three;
  bad_crc[1].set_chunk_crc32(bad_crc[1].chunk_crc32() ^ 1);
  Write("envelope", "bad-chunk-crc", Records(bad_crc, {0, 1, 2}));
  auto differs = three;
  differs[1].set_chunk(std::string(differs[1].chunk().size(), 'z'));
  differs[1].set_chunk_crc32(Crc32(differs[1].chunk()));
  Write("envelope", "duplicate-with-other-contents",
        Records(three, {0, 1}) + Records(differs, {1}));
  auto inconsistent = three;
  inconsistent[2].set_payload_size(301);
  Write("envelope", "inconsistent-header", Records(inconsistent, {0, 1, 2}));
  auto versions = one;
  versions[0].set_protocol_version(2);
  Write("envelope", "other-protocol-version", Records(versions, {0}));
  // Announces 4096 chunks of a 1 MiB payload and sends two: held until it expires.
  auto announce = three[0];
  announce.set_chunk_count(4096);
  announce.set_payload_size(1u << 20);
  Write("envelope", "announces-many-chunks", Records({announce}, {0}) + Records(three, {0}));
}

// --- increment: [encoding, flags, n lo, n hi] + the layer's bytes -------------------------------

std::string IncrementInput(const EncodedLayer& layer, uint8_t flags) {
  std::string s;
  s.push_back(static_cast<char>(layer.encoding));
  s.push_back(static_cast<char>(flags));
  s.push_back(static_cast<char>(layer.elements & 0xff));
  s.push_back(static_cast<char>(layer.elements >> 8));
  return s + layer.bytes;
}

void IncrementSeeds() {
  for (size_t n : {0u, 1u, 64u, 1000u}) {
    std::vector<int8_t> v(n), y(n);
    for (size_t i = 0; i < n; ++i) {
      v[i] = static_cast<int8_t>(i * 37 + 11);  // fuzz_increment.cc's base
      y[i] = i % 29 == 3 ? static_cast<int8_t>(v[i] ^ 0x40) : v[i];
    }
    const std::string tag = std::to_string(n);
    Write("increment", "raw-" + tag, IncrementInput(EncodeRaw(y.data(), n, false).value(), 1));
    Write("increment", "raw-lz4-" + tag, IncrementInput(EncodeRaw(y.data(), n, true).value(), 1));
    Write("increment", "raw-zero-map-" + tag,
          IncrementInput(EncodeRawZeroMap(y.data(), n).value(), 1));
    Write("increment", "lz4-" + tag,
          IncrementInput(EncodeIncrement(y.data(), v.data(), n, IncrementFormat::kLz4).value(), 0));
    Write("increment", "sparse-" + tag,
          IncrementInput(EncodeIncrement(y.data(), v.data(), n, IncrementFormat::kSparse).value(),
                         0));
    Write("increment", "sparse-in-place-" + tag,
          IncrementInput(EncodeIncrement(y.data(), v.data(), n, IncrementFormat::kSparse).value(),
                         2));
    // Exact-method patches in both forms (flag bit 3): a few positions, and a dense bitmap.
    for (size_t every : {29u, 3u}) {
      std::vector<uint8_t> mask(n);
      for (size_t i = 0; i < n; ++i) mask[i] = i % every == 1;
      uint32_t count = 0;
      EncodedLayer patch;
      patch.elements = static_cast<uint32_t>(n);
      patch.bytes = EncodePatch(y.data(), mask.data(), n, &count);
      if (!patch.bytes.empty()) {
        Write("increment", "patch-every" + std::to_string(every) + "-" + tag,
              IncrementInput(patch, 8));
      }
    }
  }
}

// --- model: [selector] + QuantizedModel or DeployModelRequest ---------------------------------

void ModelSeeds() {
  for (int variant = 0; variant < fuzz::kTinyModelVariants; ++variant) {
    const pb::QuantizedModel model = fuzz::TinyModel(variant, 10 + variant);
    const std::string bytes = model.SerializeAsString();
    const std::string tag = std::to_string(variant);
    Write("model", "model-" + tag, std::string(1, '\x00') + bytes);
    Write("model", "model-partial-tmr-" + tag, std::string(1, '\x02') + bytes);
    Write("model", "model-training-lw-tmr-" + tag, std::string(1, '\x0c') + bytes);
    pb::DeployModelRequest whole;
    *whole.mutable_model() = model;
    Write("model", "deploy-whole-" + tag, std::string(1, '\x01') + whole.SerializeAsString());
  }
  // A weight delta against the target's base model (fuzz::TinyModel(0)).
  const pb::QuantizedModel base = fuzz::TinyModel(0);
  pb::QuantizedModel next = base;
  next.set_model_version(2);
  for (int l = 0; l < next.layers_size(); ++l) {
    std::string* w = next.mutable_layers(l)->mutable_weights();
    for (size_t i = static_cast<size_t>(l); i < w->size(); i += 7) (*w)[i] ^= 0x21;
  }
  pb::DeployModelRequest delta;
  *delta.mutable_delta() = MakeWeightDelta(base, next).value();
  Write("model", "deploy-delta", std::string(1, '\x01') + delta.SerializeAsString());
  Write("model", "deploy-delta-training", std::string(1, '\x09') + delta.SerializeAsString());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_make_corpus CORPUS_ROOT (tests/fuzz/corpus)\n";
    return 2;
  }
  g_root = argv[1];
  EnvelopeSeeds();
  IncrementSeeds();
  ModelSeeds();
  std::cout << "fuzz_make_corpus: wrote " << g_written << " seed inputs under " << g_root << "\n";
  return 0;
}
