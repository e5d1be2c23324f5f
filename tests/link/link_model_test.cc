#include "common/link/link_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace r2f {
namespace {

TEST(LinkModelTest, PresetsCarryTableTwoRates) {
  struct Row {
    const char* name;
    double up, down;
  };
  // Paper Table II: LoRa and 802.15.4g list one rate for both directions.
  const Row rows[] = {{"lora", 50e3, 50e3},
                      {"ieee802154g", 800e3, 800e3},
                      {"hspa", 5.76e6, 21.1e6},
                      {"lte_cat4", 50e6, 150e6}};
  ASSERT_EQ(LinkPresetNames().size(), std::size(rows));
  for (const Row& row : rows) {
    Result<LinkSpec> spec = LinkPreset(row.name);
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();
    EXPECT_EQ(spec->name, row.name);
    EXPECT_DOUBLE_EQ(spec->uplink_bps, row.up) << row.name;
    EXPECT_DOUBLE_EQ(spec->downlink_bps, row.down) << row.name;
    EXPECT_GT(spec->latency_s, 0) << row.name;
    EXPECT_TRUE(ValidateLinkSpec(*spec).ok()) << row.name;
  }
}

TEST(LinkModelTest, UnknownPresetListsValidNames) {
  Result<LinkSpec> spec = LinkPreset("wifi");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), Status::Code::kNotFound);
  EXPECT_NE(spec.status().message().find("wifi"), std::string::npos);
  for (const std::string& name : LinkPresetNames()) {
    EXPECT_NE(spec.status().message().find(name), std::string::npos) << name;
  }
  EXPECT_FALSE(LinkPreset("custom").ok());
  EXPECT_FALSE(LinkPreset("HSPA").ok());  // names are exact
}

TEST(LinkModelTest, ModelledSecondsIsSerialisationPlusLatency) {
  LinkSpec spec{"custom", 1000.0, 4000.0, 0.25};
  EXPECT_DOUBLE_EQ(ModelledSeconds(spec, Direction::kUplink, 0), 0.25);
  EXPECT_DOUBLE_EQ(ModelledSeconds(spec, Direction::kUplink, 125), 1.0 + 0.25);
  EXPECT_DOUBLE_EQ(ModelledSeconds(spec, Direction::kDownlink, 125), 0.25 + 0.25);
  // Linear in bytes: each extra byte costs 8 / bandwidth.
  for (uint64_t b : {1ull, 1000ull, 123456789ull}) {
    double delta = ModelledSeconds(spec, Direction::kUplink, 2 * b) -
                   ModelledSeconds(spec, Direction::kUplink, b);
    EXPECT_NEAR(delta, static_cast<double>(b) * 8.0 / spec.uplink_bps, 1e-9 * delta);
  }
}

TEST(LinkModelTest, HspaUplinkIsTheBottleneck) {
  Result<LinkSpec> hspa = LinkPreset("hspa");
  ASSERT_TRUE(hspa.ok());
  const uint64_t mb = 1000000;
  double up = ModelledSeconds(*hspa, Direction::kUplink, mb);
  double down = ModelledSeconds(*hspa, Direction::kDownlink, mb);
  EXPECT_NEAR(up - hspa->latency_s, 8e6 / 5.76e6, 1e-12);
  EXPECT_NEAR(down - hspa->latency_s, 8e6 / 21.1e6, 1e-12);
  EXPECT_GT(up, down);
  EXPECT_EQ(LinkBandwidthBps(*hspa, Direction::kUplink), hspa->uplink_bps);
  EXPECT_EQ(LinkBandwidthBps(*hspa, Direction::kDownlink), hspa->downlink_bps);
}

TEST(LinkModelTest, ParseCustomNeedsAllValues) {
  LinkParams params;
  params.preset = "custom";
  params.uplink_bps = 1e6;
  params.downlink_bps = 2e6;
  Result<LinkSpec> missing = ParseLinkSpec(params);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("link.latency_s"), std::string::npos)
      << missing.status().ToString();

  params.latency_s = 0.0;
  Result<LinkSpec> spec = ParseLinkSpec(params);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->name, "custom");
  EXPECT_EQ(spec->uplink_bps, 1e6);
  EXPECT_EQ(spec->downlink_bps, 2e6);
  EXPECT_EQ(spec->latency_s, 0.0);
}

TEST(LinkModelTest, ParsePresetWithOverride) {
  LinkParams params;
  params.preset = "ieee802154g";
  Result<LinkSpec> plain = ParseLinkSpec(params);
  ASSERT_TRUE(plain.ok());
  Result<LinkSpec> preset = LinkPreset("ieee802154g");
  ASSERT_TRUE(preset.ok());
  EXPECT_EQ(plain->latency_s, preset->latency_s);

  params.latency_s = 0.3;
  Result<LinkSpec> overridden = ParseLinkSpec(params);
  ASSERT_TRUE(overridden.ok());
  EXPECT_EQ(overridden->name, "ieee802154g");
  EXPECT_EQ(overridden->latency_s, 0.3);
  EXPECT_EQ(overridden->uplink_bps, preset->uplink_bps);
}

TEST(LinkModelTest, ParseRejectsBadValuesNamingTheField) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  struct Case {
    std::optional<double> up, down, latency;
    const char* field;
  };
  const Case cases[] = {
      {0.0, 1.0, 0.0, "link.uplink_bps"},   {-5.0, 1.0, 0.0, "link.uplink_bps"},
      {nan, 1.0, 0.0, "link.uplink_bps"},   {inf, 1.0, 0.0, "link.uplink_bps"},
      {1.0, 0.0, 0.0, "link.downlink_bps"}, {1.0, nan, 0.0, "link.downlink_bps"},
      {1.0, 1.0, -0.1, "link.latency_s"},   {1.0, 1.0, inf, "link.latency_s"},
      {1.0, 1.0, nan, "link.latency_s"},
  };
  for (const Case& c : cases) {
    LinkParams params{"custom", c.up, c.down, c.latency};
    Result<LinkSpec> spec = ParseLinkSpec(params);
    ASSERT_FALSE(spec.ok()) << c.field;
    EXPECT_EQ(spec.status().code(), Status::Code::kInvalidArgument);
    EXPECT_NE(spec.status().message().find(c.field), std::string::npos) << spec.status().ToString();
  }
  // Overrides of presets are validated too.
  LinkParams bad_override{"hspa", -1.0, std::nullopt, std::nullopt};
  EXPECT_FALSE(ParseLinkSpec(bad_override).ok());
  LinkParams unknown{"carrier_pigeon", std::nullopt, std::nullopt, std::nullopt};
  Result<LinkSpec> spec = ParseLinkSpec(unknown);
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(spec.status().message().find("link.preset"), std::string::npos);
}

}  // namespace
}  // namespace r2f
