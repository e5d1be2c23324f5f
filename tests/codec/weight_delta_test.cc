// Weight deltas (common/codec/weight_delta.h).
#include <gtest/gtest.h>

#include <filesystem>

#include "common/base/checksum.h"
#include "common/codec/weight_delta.h"
#include "tests/support/test_util.h"

namespace r2f {
namespace {

// Two MAC "layers" are all a delta looks at; the graph only has to compare equal.
pb::QuantizedModel TinyModel() {
  pb::QuantizedModel m;
  m.set_format_version(1);
  m.set_model_version(1);
  m.mutable_graph()->set_name("tiny");
  for (uint32_t node : {1u, 3u}) {
    pb::QuantizedLayer* l = m.add_layers();
    l->set_node_id(node);
    std::string w(1000, '\0');
    for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<char>(i * 7 + node);
    l->set_weights(w);
    l->add_bias(10);
    l->add_bias(-4);
    l->add_weight_frac(6);
  }
  return m;
}

TEST(WeightDeltaTest, RoundTripSendsOnlyChangedLayers) {
  const pb::QuantizedModel base = TinyModel();
  pb::QuantizedModel target = base;
  target.set_model_version(2);
  target.set_description("step 1");
  (*target.mutable_layers(1)->mutable_weights())[17] ^= 0x40;
  (*target.mutable_layers(1)->mutable_weights())[999] = -128;
  auto delta = MakeWeightDelta(base, target);
  ASSERT_TRUE(delta.ok()) << delta.status().ToString();
  ASSERT_EQ(delta->layers_size(), 1);
  EXPECT_EQ(delta->layers(0).node_id(), 3u);
  EXPECT_EQ(delta->layers(0).bias_size(), 0);
  EXPECT_LT(delta->ByteSizeLong(), 100u);
  auto applied = ApplyWeightDelta(base, *delta);
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  EXPECT_EQ(applied->SerializeAsString(), target.SerializeAsString());

  // A bias-only change carries no weights.
  pb::QuantizedModel bias_only = base;
  bias_only.set_model_version(3);
  bias_only.mutable_layers(0)->set_bias(1, 99);
  delta = MakeWeightDelta(base, bias_only);
  ASSERT_TRUE(delta.ok());
  EXPECT_TRUE(delta->layers(0).increment().empty());
  EXPECT_EQ(ApplyWeightDelta(base, *delta)->SerializeAsString(), bias_only.SerializeAsString());
}

TEST(WeightDeltaTest, RefusesWhatItCannotExpress) {
  const pb::QuantizedModel base = TinyModel();
  pb::QuantizedModel other = base;
  other.set_model_version(2);
  other.mutable_layers(0)->set_weight_frac(0, 5);
  EXPECT_NE(
      MakeWeightDelta(base, other).status().message().find("weight fractional bits of layer 1"),
      std::string::npos);
  other = base;
  other.set_model_version(2);
  other.mutable_graph()->set_name("changed");
  EXPECT_NE(MakeWeightDelta(base, other).status().message().find("the graph"), std::string::npos);
  EXPECT_NE(MakeWeightDelta(base, base).status().message().find("two model versions"),
            std::string::npos);

  pb::QuantizedModel target = base;
  target.set_model_version(2);
  (*target.mutable_layers(0)->mutable_weights())[5] ^= 1;
  pb::WeightDelta delta = MakeWeightDelta(base, target).value();
  pb::WeightDelta unknown = delta;
  unknown.mutable_layers(0)->set_node_id(2);
  EXPECT_NE(ApplyWeightDelta(base, unknown).status().message().find("names node 2"),
            std::string::npos);
  pb::WeightDelta garbled = delta;
  garbled.mutable_layers(0)->set_increment("\x01\x02garbage");
  EXPECT_EQ(ApplyWeightDelta(base, garbled).status().code(), Status::Code::kCorruption);
  pb::WeightDelta twice = delta;
  *twice.add_layers() = delta.layers(0);
  EXPECT_NE(ApplyWeightDelta(base, twice).status().message().find("twice"), std::string::npos);
  EXPECT_EQ(WeightsCrc32(target), delta.weights_crc32());
}

}  // namespace
}  // namespace r2f
