// The small shared pieces of the daemons: the link and broker config sections, weight deltas
// and atomic file replacement.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/atomic_file.h"
#include "common/broker_config.h"
#include "common/checksum.h"
#include "common/link_config.h"
#include "common/weight_delta.h"
#include "tests/test_util.h"

namespace r2f {
namespace {

Status ParseLink(const std::string& yaml, LinkConfig* out) {
  auto map = ConfigMap::LoadString(yaml, "eval.yaml");
  EXPECT_TRUE(map.ok()) << map.status().ToString();
  ConfigMap link = map->Section("link");
  Status st = ParseLinkConfig(link, out);
  EXPECT_EQ(st.ToString(), map->Finish().ToString()) << "the section's error is the config's";
  return st;
}

TEST(LinkConfigTest, PresetsOverridesAndCustom) {
  LinkConfig c;
  ASSERT_TRUE(ParseLink("link: {preset: hspa}\n", &c).ok());
  EXPECT_EQ(c.spec.name, "hspa");
  EXPECT_EQ(c.spec.uplink_bps, 5.76e6);
  EXPECT_EQ(c.spec.downlink_bps, 21.1e6);
  EXPECT_FALSE(c.throttle);

  ASSERT_TRUE(ParseLink("link: {preset: lora, latency_s: 0.2, throttle: true}\n", &c).ok());
  EXPECT_EQ(c.spec.latency_s, 0.2);
  EXPECT_EQ(c.spec.uplink_bps, 50e3);
  EXPECT_TRUE(c.throttle);

  ASSERT_TRUE(
      ParseLink("link: {preset: custom, uplink_bps: 1e6, downlink_bps: 2e6, latency_s: 0}\n", &c)
          .ok());
  EXPECT_EQ(c.spec.name, "custom");
  EXPECT_EQ(c.spec.downlink_bps, 2e6);
}

TEST(LinkConfigTest, ErrorsNameFileLineAndKey) {
  LinkConfig c;
  Status st = ParseLink("# eval\nlink: {preset: wifi}\n", &c);
  EXPECT_NE(st.message().find("eval.yaml:2: key 'link.preset': must be one of"), std::string::npos)
      << st.ToString();
  st = ParseLink("link:\n  preset: custom\n  uplink_bps: 1e6\n", &c);
  EXPECT_NE(st.message().find("key 'link.preset': link.downlink_bps: required when link.preset "
                              "is 'custom'"),
            std::string::npos)
      << st.ToString();
  st = ParseLink("link: {preset: hspa, uplink_bps: -5}\n", &c);
  EXPECT_NE(st.message().find("key 'link.uplink_bps': must be in"), std::string::npos)
      << st.ToString();
  st = ParseLink("link: {preset: hspa, throtle: true}\n", &c);
  EXPECT_NE(st.message().find("unknown key, did you mean 'throttle'?"), std::string::npos)
      << st.ToString();
  st = ParseLink("link: {}\n", &c);
  EXPECT_NE(st.message().find("key 'link.preset': required key is missing"), std::string::npos)
      << st.ToString();
}

TEST(BrokerConfigTest, ReadsConnectionFieldsAndChecksThem) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("ca.pem"), "x");
  auto map = ConfigMap::LoadString(
      "broker: {uri: 'ssl://broker.example:8883', username: dev, "
      "password: s3cret, ca_file: '" +
          dir.File("ca.pem") + "'}\n",
      "client.yaml");
  ASSERT_TRUE(map.ok());
  TransportOptions o;
  ConfigMap broker = map->Section("broker");
  ASSERT_TRUE(ParseBrokerConfig(broker, &o).ok());
  EXPECT_EQ(o.broker_uri, "ssl://broker.example:8883");
  EXPECT_EQ(o.password, "s3cret");
  EXPECT_EQ(o.ca_file, dir.File("ca.pem"));

  for (const auto& [yaml, text] : std::vector<std::pair<std::string, std::string>>{
           {"broker: {uri: 'localhost:1883'}\n", "expected scheme://host:port"},
           {"broker: {uri: 'http://h:1883'}\n", "scheme must be tcp, ssl, ws or wss"},
           {"broker: {uri: 'tcp://h:99999'}\n", "port must be in [1, 65535]"},
           {"broker: {uri: 'tcp://h:1883', cert_file: /nonexistent.pem}\n",
            "key 'broker.cert_file': cannot read file '/nonexistent.pem'"}}) {
    auto m = ConfigMap::LoadString(yaml, "client.yaml");
    ASSERT_TRUE(m.ok());
    ConfigMap section = m->Section("broker");
    TransportOptions opts;
    Status st = ParseBrokerConfig(section, &opts);
    EXPECT_NE(st.message().find(text), std::string::npos) << st.ToString();
    EXPECT_NE(st.message().find("client.yaml:1:"), std::string::npos) << st.ToString();
  }
}

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

TEST(AtomicFileTest, ReplacesWholeFilesAndCreatesDirectories) {
  testing::TempDir dir;
  const std::string path = dir.File("a/b/state.pb");
  ASSERT_TRUE(WriteFileAtomically(path, "first").ok());
  EXPECT_EQ(testing::ReadFile(path), "first");
  ASSERT_TRUE(WriteFileAtomically(path, std::string(100000, 'x')).ok());
  EXPECT_EQ(testing::ReadFile(path).size(), 100000u);
  // No temporary file is left behind.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.File("a/b"))) {
    files += entry.is_regular_file();
  }
  EXPECT_EQ(files, 1);
  Status st = WriteFileAtomically("/proc/r2f-no-such-dir/x", "y");
  EXPECT_EQ(st.code(), Status::Code::kIoError);
  EXPECT_NE(st.message().find("/proc/r2f-no-such-dir"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace r2f
