// The server's mirror of a device builds its clean simulator only when a rebuild needs one: a
// reply of raw layers (DRM) is rebuilt without it, an increment reply asks for it once, and a
// model set after an acknowledged deploy is what the mirror reports and what it builds.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "accel_sim/accelerator.h"
#include "accel_sim/random_model.h"
#include "common/codec/increment_codec.h"
#include "server/retrain/device_mirror.h"
#include "server/retrain/reconstruct.h"
#include "tests/accel_sim/accel_models.h"
#include "tests/accel_sim/accel_reference.h"

namespace r2f {
namespace {

struct Bench {  // a model, its faulty device and two images
  pb::QuantizedModel model;
  std::unique_ptr<accel::Accelerator> device;
  std::vector<uint8_t> pixels;
  accel::ImageBatch images;
};

Bench MakeBench(uint64_t seed) {
  Bench s;
  const pb::Graph graph = accel::testing::SmallGraphs()[0];
  s.model = accel::MakeRandomQuantizedModel(graph, seed).value();
  s.device = accel::Accelerator::Create(s.model, accel::AcceleratorConfig{}).value();
  s.pixels = accel::testing::RandomPixels(static_cast<size_t>(NumElements(graph.input_shape()) * 2),
                                          seed + 1);
  s.images.pixels = s.pixels.data();
  s.images.batch = 2;
  s.images.sample_ids = {3, 4};
  return s;
}

// The device's faulty training run as a reply: every layer raw, or every layer as an increment
// against the clean chain (the paper's reference).
pb::DataReply Reply(const Bench& s, bool increments) {
  accel::FaultConfig f;
  f.ber = 1e-3;
  accel::TrainingResult run =
      s.device->RunTraining(s.images, f, accel::TmrConfig{}, 9, accel::TrainingReference::kChain)
          .value();
  accel::InferenceResult clean =
      s.device->Infer(s.images, accel::FaultConfig{}, accel::TmrConfig{}, 0, true).value();
  pb::DataReply reply;
  reply.set_model_version(s.model.model_version());
  reply.set_reference(pb::REFERENCE_CHAIN);
  reply.set_inputs(std::string(s.pixels.begin(), s.pixels.end()));
  for (uint64_t id : s.images.sample_ids) reply.add_sample_ids(id);
  for (size_t m = 0; m < run.faulty.size(); ++m) {
    const std::vector<int8_t>& y = run.faulty[m].data;
    EncodedLayer e = increments ? EncodeIncrement(y.data(), clean.layer_outputs[m].data.data(),
                                                  y.size(), IncrementFormat::kLz4)
                                      .value()
                                : EncodeRaw(y.data(), y.size()).value();
    pb::EncodedLayer* l = reply.add_layers();
    l->set_node_id(s.device->mac_layers()[m]);
    l->set_elements(y.size());
    l->set_encoding(static_cast<uint32_t>(e.encoding));
    l->set_data(e.bytes);
  }
  return reply;
}

TEST(DeviceMirrorTest, RawRepliesAreRebuiltWithoutTheSimulatorAndIncrementsAskForIt) {
  Bench s = MakeBench(21);
  for (bool increments : {false, true}) {
    const pb::DataReply reply = Reply(s, increments);
    int asked = 0;
    auto recon = ReconstructLayers(reply, s.model, [&]() -> Result<accel::Accelerator*> {
      ++asked;
      return s.device.get();
    });
    ASSERT_TRUE(recon.ok()) << recon.status().ToString();
    EXPECT_EQ(asked, increments ? 1 : 0) << (increments ? "increments" : "raw");
    // Both forms rebuild the same outputs: the device's faulty ones.
    auto direct = ReconstructLayers(Reply(s, false), *s.device);
    ASSERT_TRUE(direct.ok());
    ASSERT_EQ(recon->layers.size(), direct->layers.size());
    for (size_t m = 0; m < recon->layers.size(); ++m) {
      EXPECT_EQ(recon->layers[m].data, direct->layers[m].data) << "layer " << m;
    }
  }
}

TEST(DeviceMirrorTest, SetModelIsReportedAtOnceAndBuiltWhenAskedFor) {
  Bench s = MakeBench(22);
  auto mirror = DeviceMirror::Create(s.model, accel::AcceleratorConfig{});
  ASSERT_TRUE(mirror.ok());
  pb::QuantizedModel next = accel::MakeRandomQuantizedModel(s.model.graph(), 23).value();
  next.set_model_version(s.model.model_version() + 1);
  ASSERT_TRUE((*mirror)->Set(next).ok());
  EXPECT_EQ((*mirror)->model().model_version(), next.model_version());
  auto clean = (*mirror)->Clean();
  ASSERT_TRUE(clean.ok());
  EXPECT_EQ((*clean)->model().model_version(), next.model_version());
  EXPECT_EQ((*clean)->model().layers(0).weights(), next.layers(0).weights());
  EXPECT_EQ((*mirror)->model().model_version(), next.model_version());

  // A model the simulator refuses: Clean says why, and the mirror still reports the model.
  pb::QuantizedModel broken = next;
  broken.set_model_version(next.model_version() + 1);
  broken.mutable_layers(0)->mutable_weights()->pop_back();
  ASSERT_TRUE((*mirror)->Set(broken).ok());
  auto refused = (*mirror)->Clean();
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("weights"), std::string::npos)
      << refused.status().ToString();
  EXPECT_EQ((*mirror)->model().model_version(), broken.model_version());
}

// r of the protection set: 0 without TMR, 2 when every MAC layer runs three times (layer- and
// network-wise alike), in between for a partial set.
TEST(DeviceMirrorTest, TmrOverheadOfEachMode) {
  Bench s = MakeBench(25);
  auto mirror = DeviceMirror::Create(s.model, accel::AcceleratorConfig{});
  ASSERT_TRUE(mirror.ok());
  accel::TmrConfig tmr;
  auto r = [&](accel::TmrMode mode, std::vector<uint32_t> layers = {}) {
    tmr.mode = mode;
    tmr.protected_layers = std::move(layers);
    auto v = (*mirror)->TmrOverhead(tmr, 16);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? *v : -1.0;
  };
  EXPECT_DOUBLE_EQ(r(accel::TmrMode::kNone), 0.0);
  EXPECT_DOUBLE_EQ(r(accel::TmrMode::kLayerWise), 2.0);
  EXPECT_DOUBLE_EQ(r(accel::TmrMode::kNetworkWise), 2.0);
  const uint32_t first_mac = s.model.layers(0).node_id();
  const double partial = r(accel::TmrMode::kPartial, {first_mac});
  EXPECT_GT(partial, 0.0);
  EXPECT_LT(partial, 2.0);
}

// As the retraining loop uses it: the mirror's model() is held by the rebuild while the rebuild
// asks for the simulator, which the mirror builds then; the result is the device's outputs.
TEST(DeviceMirrorTest, ARebuildThroughTheMirrorUsesTheModelSetLast) {
  Bench first = MakeBench(24);
  Bench next = MakeBench(25);
  next.model.set_model_version(first.model.model_version() + 1);
  next.device = accel::Accelerator::Create(next.model, accel::AcceleratorConfig{}).value();
  auto mirror = DeviceMirror::Create(first.model, accel::AcceleratorConfig{});
  ASSERT_TRUE(mirror.ok());
  ASSERT_TRUE((*mirror)->Set(next.model).ok());
  auto direct = ReconstructLayers(Reply(next, false), *next.device);
  ASSERT_TRUE(direct.ok());
  for (bool increments : {false, true}) {
    auto recon = ReconstructLayers(Reply(next, increments), (*mirror)->model(),
                                   [&] { return (*mirror)->Clean(); });
    ASSERT_TRUE(recon.ok()) << recon.status().ToString();
    ASSERT_EQ(recon->layers.size(), direct->layers.size());
    for (size_t m = 0; m < recon->layers.size(); ++m) {
      EXPECT_EQ(recon->layers[m].data, direct->layers[m].data) << "layer " << m;
    }
  }
  // A simulator of another model than the one the reply was checked against is refused.
  auto mismatched =
      ReconstructLayers(Reply(next, true), next.model,
                        [&]() -> Result<accel::Accelerator*> { return first.device.get(); });
  ASSERT_FALSE(mismatched.ok());
  EXPECT_EQ(mismatched.status().code(), Status::Code::kInternal) << mismatched.status().ToString();
}

}  // namespace
}  // namespace r2f
