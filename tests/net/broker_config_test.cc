// The `broker` section of the daemon configs (common/net/broker_config.h).
#include <gtest/gtest.h>

#include <filesystem>

#include "common/net/broker_config.h"
#include "tests/support/test_util.h"

namespace r2f {
namespace {

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
  EXPECT_EQ(o.chunk_bytes, kDefaultChunkBytes);  // not given: the default

  auto sized = ConfigMap::LoadString("broker: {uri: 'tcp://h:1883', chunk_kib: 128}\n", "c.yaml");
  ASSERT_TRUE(sized.ok());
  ConfigMap sized_broker = sized->Section("broker");
  ASSERT_TRUE(ParseBrokerConfig(sized_broker, &o).ok());
  EXPECT_EQ(o.chunk_bytes, 128u * 1024);

  for (const auto& [yaml, text] : std::vector<std::pair<std::string, std::string>>{
           {"broker: {uri: 'localhost:1883'}\n", "expected scheme://host:port"},
           {"broker: {uri: 'http://h:1883'}\n", "scheme must be tcp, ssl, ws or wss"},
           {"broker: {uri: 'tcp://h:99999'}\n", "port must be in [1, 65535]"},
           {"broker: {uri: 'tcp://h:1883', cert_file: /nonexistent.pem}\n",
            "key 'broker.cert_file': cannot read file '/nonexistent.pem'"},
           {"broker: {uri: 'tcp://h:1883', chunk_kib: 8}\n", "broker.chunk_kib"},
           {"broker: {uri: 'tcp://h:1883', chunk_kib: 20000}\n", "broker.chunk_kib"}}) {
    auto m = ConfigMap::LoadString(yaml, "client.yaml");
    ASSERT_TRUE(m.ok());
    ConfigMap section = m->Section("broker");
    TransportOptions opts;
    Status st = ParseBrokerConfig(section, &opts);
    EXPECT_NE(st.message().find(text), std::string::npos) << st.ToString();
    EXPECT_NE(st.message().find("client.yaml:1:"), std::string::npos) << st.ToString();
  }
}

}  // namespace
}  // namespace r2f
