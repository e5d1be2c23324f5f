// The exact layer-local method (method.reference: exact, docs/retraining.md): the device sends
// each layer as its smallest exact form (raw, raw+LZ4, or an increment against the voted
// layer-local replicas plus a patch of its own outputs where the replicas disagreed), and the
// server's rebuild in graph order (ReconstructLayers) must equal the device's faulty outputs
// bit for bit in every layer, unless all three replicas of some element agreed on a wrong value;
// then each layer, rebuilt on the device's true input, is wrong in exactly those elements.
// Three graphs, each fault site alone and all four together, BERs up to 2e-4.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "accel_sim/accelerator.h"
#include "common/base/checksum.h"
#include "common/codec/patch_codec.h"
#include "common/ir/graph.h"
#include "common/ir/model_zoo.h"
#include "server/retrain/reconstruct.h"
#include "tests/accel_sim/accel_models.h"
#include "tests/accel_sim/accel_reference.h"

namespace r2f {
namespace {

int64_t CountDiff(const std::vector<int8_t>& a, const std::vector<int8_t>& b) {
  int64_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += a[i] != b[i];
  return n;
}

struct Device {
  pb::QuantizedModel model;
  std::unique_ptr<accel::Accelerator> accel;   // the faulty device
  std::unique_ptr<accel::Accelerator> server;  // the server's clean copy
  std::vector<uint8_t> pixels;
  accel::ImageBatch images;
};

Device MakeDevice(const pb::Graph& graph, int batch, uint64_t seed) {
  Device d;
  d.model = accel::MakeRandomQuantizedModel(graph, seed).value();
  d.accel = accel::Accelerator::Create(d.model, accel::AcceleratorConfig{}).value();
  d.server = accel::Accelerator::Create(d.model, accel::AcceleratorConfig{}).value();
  d.pixels = accel::testing::RandomPixels(
      static_cast<size_t>(NumElements(graph.input_shape()) * batch), seed + 1);
  d.images.pixels = d.pixels.data();
  d.images.batch = batch;
  for (int b = 0; b < batch; ++b) d.images.sample_ids.push_back(200 + b);
  return d;
}

// The device's training reply for `run`, each layer in its smallest exact form, with the
// checksums of its true outputs (GetDataRequest.verify_rebuild).
pb::DataReply ExactReply(const Device& d, const accel::TrainingResult& run) {
  pb::DataReply reply;
  reply.set_model_version(d.model.model_version());
  reply.set_reference(pb::REFERENCE_LOCAL_EXACT);
  reply.set_inputs(std::string(d.pixels.begin(), d.pixels.end()));
  for (uint64_t id : d.images.sample_ids) reply.add_sample_ids(id);
  const std::vector<uint32_t>& macs = d.accel->mac_layers();
  for (size_t m = 0; m < macs.size(); ++m) {
    const std::vector<int8_t>& y = run.faulty[m].data;
    Result<EncodedLayer> enc =
        EncodeExact(y.data(), run.reference[m].data.data(), run.disagreement[m].data(), y.size());
    EXPECT_TRUE(enc.ok()) << enc.status().ToString();
    pb::EncodedLayer* l = reply.add_layers();
    l->set_node_id(macs[m]);
    l->set_elements(y.size());
    l->set_encoding(static_cast<uint32_t>(enc->encoding));
    l->set_data(enc->bytes);
    l->set_patch(enc->patch);
    l->set_patched(enc->patched);
    l->set_has_output_crc32(true);
    l->set_output_crc32(Crc32(std::string_view(reinterpret_cast<const char*>(y.data()), y.size())));
  }
  return reply;
}

// The three small graphs (every op), and ResNet18 at batch 16: there weight flips of different
// replicas in one output channel often end in the same clamped output (ReLU's 0 or
// saturation), which a voter comparing outputs would take for agreement.
Device DeviceOf(int graph) {
  if (graph < 3) return MakeDevice(accel::testing::SmallGraphs()[graph], 4, 41 + graph);
  return MakeDevice(BuildNetwork(*DefaultNetworkSpec("resnet18")).value(), 16, 5);
}

class ExactRebuildTest : public ::testing::TestWithParam<int> {};

TEST_P(ExactRebuildTest, RebuildEqualsTheDeviceExceptWhereAllThreeReplicasAgreeOnAWrongValue) {
  Device d = DeviceOf(GetParam());
  const size_t layers = d.accel->mac_layers().size();
  int64_t patched_total = 0, approximate_wrong = 0, triple_total = 0;
  for (double ber : {1e-5, 1e-4, 2e-4}) {
    for (int site = -1; site < accel::kNumFaultSites; ++site) {
      accel::FaultConfig f;
      f.ber = ber;
      f.seed = 9;
      if (site >= 0) {
        f.sites = {false, false, false, false};
        f.sites[site] = true;
      }
      SCOPED_TRACE("ber " + std::to_string(ber) + ", site " +
                   (site < 0 ? std::string("all") : accel::FaultSiteName(accel::FaultSite(site))));
      for (uint64_t tag : {3u, 4u}) {
        auto run = d.accel->RunTraining(d.images, f, accel::TmrConfig{}, tag,
                                        accel::TrainingReference::kLocalExact);
        ASSERT_TRUE(run.ok()) << run.status().ToString();
        ASSERT_EQ(run->disagreement.size(), layers);

        // f_l(x_l): each layer's clean function of the device's true input.
        std::vector<std::vector<int8_t>> own(layers);
        accel::MacOutputHook replay = [&](size_t m, int8_t* out, int64_t n) {
          own[m].assign(out, out + n);
          std::copy(run->faulty[m].data.begin(), run->faulty[m].data.end(), out);
          return Status::Ok();
        };
        ASSERT_TRUE(d.server->InferWithOverrides(d.images, replay, false).ok());
        // Elements whose three replicas agreed (no patch) on a value other than f_l(x_l).
        std::vector<int64_t> triple(layers, 0);
        for (size_t m = 0; m < layers; ++m) {
          const std::vector<uint8_t>& mask = run->disagreement[m];
          for (size_t i = 0; i < mask.size(); ++i) {
            triple[m] += mask[i] == 0 && run->reference[m].data[i] != own[m][i];
            patched_total += mask[i];
          }
          triple_total += triple[m];
        }

        const pb::DataReply reply = ExactReply(d, *run);
        auto recon = ReconstructLayers(reply, *d.server);
        ASSERT_TRUE(recon.ok()) << recon.status().ToString();
        size_t first_triple = layers;
        for (size_t m = 0; m < layers && first_triple == layers; ++m) {
          if (triple[m] > 0) first_triple = m;
        }
        int wrong_layers = 0;
        for (size_t m = 0; m < layers; ++m) {
          const EncodedLayerView enc = EncodedLayerOf(reply.layers(static_cast<int>(m)));
          // A layer sent raw is exact whatever its vote.
          const int64_t expected = IsIncrement(enc.encoding) ? triple[m] : 0;
          const int64_t wrong = CountDiff(recon->layers[m].data, run->faulty[m].data);
          wrong_layers += wrong > 0;
          if (m < first_triple) {
            EXPECT_EQ(wrong, 0) << "layer " << m;
          } else if (m == first_triple) {
            EXPECT_EQ(wrong, expected) << "layer " << m;
          }
          // Each layer on the device's true input: wrong exactly where the vote was.
          std::vector<int8_t> alone(own[m].size());
          ASSERT_TRUE(Decode(enc, own[m].data(), alone.data(), alone.size()).ok());
          EXPECT_EQ(CountDiff(alone, run->faulty[m].data), expected) << "layer " << m;
        }
        EXPECT_EQ(recon->mismatched_layers, wrong_layers);

        // The approximate local reference on the same execution: no patch, so every failed
        // vote (two replicas wrong alike, or three different values) stays in the rebuild.
        pb::DataReply approximate = reply;
        approximate.set_reference(pb::REFERENCE_LOCAL);
        for (size_t m = 0; m < layers; ++m) {
          pb::EncodedLayer* l = approximate.mutable_layers(static_cast<int>(m));
          if (l->patched() == 0) continue;
          Result<EncodedLayer> inc =
              EncodeIncrement(run->faulty[m].data.data(), run->reference[m].data.data(),
                              run->faulty[m].data.size(), IncrementFormat::kSparse);
          ASSERT_TRUE(inc.ok());
          l->set_encoding(static_cast<uint32_t>(inc->encoding));
          l->set_data(inc->bytes);
          l->clear_patch();
          l->set_patched(0);
        }
        auto approx = ReconstructLayers(approximate, *d.server);
        ASSERT_TRUE(approx.ok()) << approx.status().ToString();
        for (size_t m = 0; m < layers; ++m) {
          approximate_wrong += CountDiff(approx->layers[m].data, run->faulty[m].data);
        }
      }
    }
  }
  std::printf("patched %lld, all-three-agree-wrong %lld, approximate rebuild wrong %lld\n",
              static_cast<long long>(patched_total), static_cast<long long>(triple_total),
              static_cast<long long>(approximate_wrong));
  EXPECT_GT(patched_total, 0);      // the patches were exercised
  EXPECT_GT(approximate_wrong, 0);  // and without them the rebuild is wrong
}

INSTANTIATE_TEST_SUITE_P(Graphs, ExactRebuildTest, ::testing::Values(0, 1, 2, 3));

// A vote that all three replicas got wrong alike cannot be seen by the device: the rebuild is
// off there by exactly the vote's error, and the checksum counts the layer.
TEST(ExactRebuildCountTest, AnUndetectedWrongVoteIsCountedAndNothingElse) {
  Device d = MakeDevice(accel::testing::SmallGraphs()[0], 2, 77);
  accel::FaultConfig f;
  f.ber = 1e-4;
  auto run = d.accel->RunTraining(d.images, f, accel::TmrConfig{}, 5,
                                  accel::TrainingReference::kLocalExact);
  ASSERT_TRUE(run.ok());
  // The largest layer, so that its exact form is an increment.
  size_t target = 0;
  for (size_t m = 0; m < run->faulty.size(); ++m) {
    if (run->faulty[m].data.size() > run->faulty[target].data.size()) target = m;
  }
  // Spoil three unpatched elements of its vote, as three agreeing replicas would.
  std::vector<int8_t>& v = run->reference[target].data;
  int spoiled = 0;
  for (size_t i = 0; i < v.size() && spoiled < 3; ++i) {
    if (run->disagreement[target][i] != 0) continue;
    v[i] = static_cast<int8_t>(v[i] ^ 0x10);
    ++spoiled;
  }
  ASSERT_EQ(spoiled, 3);
  const pb::DataReply reply = ExactReply(d, *run);
  ASSERT_TRUE(
      IsIncrement(static_cast<Encoding>(reply.layers(static_cast<int>(target)).encoding())));
  auto recon = ReconstructLayers(reply, *d.server);
  ASSERT_TRUE(recon.ok());
  for (size_t m = 0; m < target; ++m) EXPECT_EQ(recon->layers[m].data, run->faulty[m].data);
  EXPECT_EQ(CountDiff(recon->layers[target].data, run->faulty[target].data), 3);
  EXPECT_GE(recon->mismatched_layers, 1);
}

}  // namespace
}  // namespace r2f
