#include "client/layer_encoder.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "common/base/random.h"
#include "common/codec/patch_codec.h"

namespace r2f {
namespace {

// Layers of different sizes (so that the parallel loop takes them out of order), each a
// reference with a few differing and disagreeing elements.
struct Layers {
  std::vector<std::vector<int8_t>> faulty, reference;
  std::vector<std::vector<uint8_t>> mask;
  std::vector<LayerOutputs> outputs;
};

Layers MakeLayers() {
  Layers l;
  Rng rng(17);
  const std::vector<size_t> sizes = {300, 50000, 7, 120000, 4096, 1, 65536, 999};
  for (size_t n : sizes) {
    std::vector<int8_t> v(n), y(n);
    std::vector<uint8_t> m(n, 0);
    for (size_t i = 0; i < n; ++i) {
      v[i] = static_cast<int8_t>(rng.Next() % 5 == 0 ? 0 : rng.Next());
      y[i] = v[i];
      const uint64_t r = rng.Next() % 100;
      if (r < 3) y[i] = static_cast<int8_t>(y[i] ^ 0x10);  // an error the vote caught
      if (r < 2) m[i] = 1;
    }
    l.faulty.push_back(std::move(y));
    l.reference.push_back(std::move(v));
    l.mask.push_back(std::move(m));
  }
  for (size_t k = 0; k < sizes.size(); ++k) {
    l.outputs.push_back(
        {static_cast<uint32_t>(100 + k), &l.faulty[k], &l.reference[k], &l.mask[k]});
  }
  return l;
}

pb::GetDataRequest ExactRequest() {
  pb::GetDataRequest request;
  request.set_policy(pb::ENCODE_ADAPTIVE);
  request.set_reference(pb::REFERENCE_LOCAL_EXACT);
  return request;
}

// The parallel encoding gives, layer for layer and in the given order, what the codec gives
// for each layer alone, and its counts add up.
TEST(LayerEncoderTest, EncodeAllEqualsEachLayerEncodedAloneInOrder) {
  const Layers l = MakeLayers();
  const pb::GetDataRequest request = ExactRequest();
  const std::set<uint32_t> none;
  LayerEncoder encoder(request, none);
  pb::DataReply reply;
  ASSERT_TRUE(encoder.EncodeAll(l.outputs, reply.mutable_layers()).ok());
  ASSERT_EQ(reply.layers_size(), static_cast<int>(l.outputs.size()));
  uint64_t patched = 0;
  uint32_t disagreeing = 0;
  for (size_t k = 0; k < l.outputs.size(); ++k) {
    const pb::EncodedLayer& got = reply.layers(static_cast<int>(k));
    auto alone = EncodeExact(l.faulty[k].data(), l.reference[k].data(), l.mask[k].data(),
                             l.faulty[k].size());
    ASSERT_TRUE(alone.ok());
    EXPECT_EQ(got.node_id(), 100 + k);
    EXPECT_EQ(got.elements(), l.faulty[k].size());
    EXPECT_EQ(got.encoding(), static_cast<uint32_t>(alone->encoding)) << "layer " << k;
    EXPECT_EQ(got.data(), alone->bytes) << "layer " << k;
    EXPECT_EQ(got.patch(), alone->patch) << "layer " << k;
    EXPECT_EQ(got.patched(), alone->patched) << "layer " << k;
    // Disagreement is the mask's: some element where the replicas' sums differ.
    const bool any = std::find(l.mask[k].begin(), l.mask[k].end(), 1) != l.mask[k].end();
    EXPECT_EQ(got.disagreed(), any) << "layer " << k;
    patched += got.patched();
    disagreeing += got.disagreed();
  }
  EXPECT_GT(patched, 0u);
  EXPECT_EQ(encoder.patched(), patched);
  EXPECT_EQ(encoder.disagreeing_layers(), disagreeing);
  EXPECT_GT(disagreeing, 0u);
  // The encoder's timers ran (a steady clock in nanoseconds: encoding takes microseconds).
  EXPECT_GT(encoder.codec_seconds() + encoder.increment_seconds(), 0.0);
}

TEST(LayerEncoderTest, AnErrorNamesTheLayer) {
  Layers l = MakeLayers();
  l.mask[3].resize(5);  // a mask that does not fit its layer
  const pb::GetDataRequest request = ExactRequest();
  const std::set<uint32_t> none;
  LayerEncoder encoder(request, none);
  pb::DataReply reply;
  const Status st = encoder.EncodeAll(l.outputs, reply.mutable_layers());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.ToString().find("encoding layer 103"), std::string::npos) << st.ToString();
  EXPECT_NE(st.ToString().find("disagreement mask of 5 flags"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace r2f
