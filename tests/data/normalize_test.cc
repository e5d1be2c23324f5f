#include "common/data/normalize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace r2f {
namespace {

// Two 1x2 images with two channels:
//   channel 0 pixels 0, 255, 255, 0 -> mean 0.5, stddev 0.5
//   channel 1 pixels 51 everywhere  -> mean 0.2, constant (stddev 1 by contract)
Dataset TwoChannelDataset() {
  Dataset ds;
  ds.name = "hand-made";
  ds.channels = 2;
  ds.height = 1;
  ds.width = 2;
  ds.num_classes = 10;
  ds.images = {0, 255, 51, 51, /* image 1 */ 255, 0, 51, 51};
  ds.labels = {1, 2};
  return ds;
}

TEST(ChannelStatsTest, HandMadeDataset) {
  ChannelStats s = ComputeChannelStats(TwoChannelDataset());
  ASSERT_EQ(s.mean.size(), 2u);
  ASSERT_EQ(s.stddev.size(), 2u);
  EXPECT_FLOAT_EQ(s.mean[0], 0.5f);
  EXPECT_FLOAT_EQ(s.stddev[0], 0.5f);
  EXPECT_FLOAT_EQ(s.mean[1], 0.2f);
  EXPECT_FLOAT_EQ(s.stddev[1], 1.0f);
}

TEST(ChannelStatsTest, UnevenChannelMatchesTheDefinition) {
  Dataset ds;
  ds.channels = 1;
  ds.height = 1;
  ds.width = 3;
  ds.images = {10, 20, 60};
  ds.labels = {0};
  ChannelStats s = ComputeChannelStats(ds);
  const double m = 30.0 / 255, var = ((20 * 20) + (10 * 10) + (30 * 30)) / 3.0 / (255.0 * 255);
  EXPECT_NEAR(s.mean[0], m, 1e-7);
  EXPECT_NEAR(s.stddev[0], std::sqrt(var), 1e-7);
}

TEST(ChannelStatsTest, EmptyDatasetIsHarmless) {
  Dataset ds;
  ds.channels = 3;
  ds.height = ds.width = 4;
  ChannelStats s = ComputeChannelStats(ds);
  EXPECT_EQ(s.mean, std::vector<float>(3, 0.0f));
  EXPECT_EQ(s.stddev, std::vector<float>(3, 1.0f));
}

TEST(NormalizeTest, ImagesFollowTheFormula) {
  Dataset ds = TwoChannelDataset();
  ChannelStats s = ComputeChannelStats(ds);
  std::vector<float> out(8, -99.0f);
  ASSERT_TRUE(NormalizeImages(ds.images.data(), 2, 2, 2, s, out.data()).ok());
  const std::vector<float> want = {-1, 1, 0, 0, 1, -1, 0, 0};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(out[i], want[i], 1e-6) << i;
}

TEST(NormalizeTest, BatchGathersByIndex) {
  Dataset ds = TwoChannelDataset();
  ChannelStats s;
  s.mean = {0.0f, 0.0f};
  s.stddev = {1.0f, 0.5f};
  const uint32_t idx[] = {1, 1, 0};
  std::vector<float> out(12);
  ASSERT_TRUE(NormalizeBatch(ds, idx, 3, s, out.data()).ok());
  EXPECT_FLOAT_EQ(out[0], 1.0f);                // image 1, channel 0, pixel 0 = 255
  EXPECT_FLOAT_EQ(out[2], 51 / 255.0f / 0.5f);  // channel 1 divided by 0.5
  EXPECT_FLOAT_EQ(out[4], 1.0f);                // image 1 again
  EXPECT_FLOAT_EQ(out[8], 0.0f);                // image 0, pixel 0 = 0
  EXPECT_FLOAT_EQ(out[9], 1.0f);
}

TEST(NormalizeTest, RejectsBadIndicesAndStats) {
  Dataset ds = TwoChannelDataset();
  ChannelStats s = ComputeChannelStats(ds);
  std::vector<float> out(4, 7.0f);
  const uint32_t bad[] = {2};
  Status st = NormalizeBatch(ds, bad, 1, s, out.data());
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(out, std::vector<float>(4, 7.0f));  // nothing written
  ChannelStats one;
  one.mean = {0.5f};
  one.stddev = {0.5f};
  const uint32_t good[] = {0};
  EXPECT_FALSE(NormalizeBatch(ds, good, 1, one, out.data()).ok());
  s.stddev[1] = 0;
  EXPECT_FALSE(NormalizeImages(ds.images.data(), 1, 2, 2, s, out.data()).ok());
}

}  // namespace
}  // namespace r2f
