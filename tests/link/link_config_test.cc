// The `link` section of the configs (common/link/link_config.h).
#include <gtest/gtest.h>

#include <filesystem>

#include "common/link/link_config.h"
#include "tests/support/test_util.h"

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

}  // namespace
}  // namespace r2f
