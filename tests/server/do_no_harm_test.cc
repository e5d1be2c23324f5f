// Do no harm's pieces without a device: the held-out validation samples and the keep-best rule
// (server/retrain/do_no_harm.h). The end-to-end runs are in tests/integration/retrain_test.cc.
#include "server/retrain/do_no_harm.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "common/base/json.h"

namespace r2f {
namespace {

TEST(SplitTrainingDataTest, ValidationIsDisjointFromTrainingAndTogetherTheyCoverTheSplit) {
  const TrainValidationSplit s = SplitTrainingData(5000, 700, 3);
  ASSERT_EQ(s.validation.size(), 700u);
  ASSERT_EQ(s.training.size(), 4300u);
  std::set<uint32_t> all(s.validation.begin(), s.validation.end());
  for (uint32_t id : s.training) EXPECT_TRUE(all.insert(id).second) << "id " << id << " twice";
  EXPECT_EQ(all.size(), 5000u);
  EXPECT_EQ(*all.rbegin(), 4999u);
  EXPECT_TRUE(std::is_sorted(s.training.begin(), s.training.end()));
  // Spread over the split, not its first or last ids.
  EXPECT_LT(s.validation.front(), 100u);
  EXPECT_GT(s.validation.back(), 4900u);
}

TEST(SplitTrainingDataTest, SeededRepeatableAndOffMeansEverySample) {
  EXPECT_EQ(SplitTrainingData(3000, 100, 7).validation, SplitTrainingData(3000, 100, 7).validation);
  EXPECT_NE(SplitTrainingData(3000, 100, 7).validation, SplitTrainingData(3000, 100, 8).validation);
  const TrainValidationSplit off = SplitTrainingData(300, 0, 7);
  EXPECT_TRUE(off.validation.empty());
  ASSERT_EQ(off.training.size(), 300u);
  for (uint32_t i = 0; i < 300; ++i) EXPECT_EQ(off.training[i], i);
  // More validation images than samples: all of them, none left to train on.
  EXPECT_TRUE(SplitTrainingData(50, 80, 1).training.empty());
}

TEST(BestModelKeeperTest, KeepsTheStrictlyBestAndBaseOnTies) {
  BestModelKeeper k;
  k.SetBase(800, 1000);
  EXPECT_FALSE(k.Offer(49, 800));  // a tie keeps Base
  EXPECT_EQ(k.kept().iteration, -1);
  EXPECT_NE(k.Reason().find("Base kept"), std::string::npos) << k.Reason();
  EXPECT_TRUE(k.Offer(99, 812));
  EXPECT_FALSE(k.Offer(149, 805));
  EXPECT_FALSE(k.Offer(199, 812));  // a tie keeps the earlier model
  EXPECT_EQ(k.kept().iteration, 99);
  EXPECT_EQ(k.kept().hits, 812);
  EXPECT_DOUBLE_EQ(k.base_top1(), 80.0);
  EXPECT_NEAR(k.base_interval(), 2.47, 0.01);  // Wilson 95% at 80% of 1000
  const std::string reason = k.Reason();
  EXPECT_NE(reason.find("iteration 99 kept"), std::string::npos) << reason;
  EXPECT_NE(reason.find("81.20%"), std::string::npos) << reason;

  const Json j = k.ToJson(ValidationSettings{});
  EXPECT_EQ(j["kept_iteration"], 99);
  EXPECT_EQ(j["history"].size(), 5u);
  EXPECT_EQ(j["history"][0]["iteration"], -1);
  EXPECT_DOUBLE_EQ(j["history"][4]["top1"].get<double>(), 81.2);
}

TEST(BestModelKeeperTest, RestoreContinuesWhereTheCheckpointWas) {
  BestModelKeeper k;
  k.Restore(500, {{-1, 400}, {49, 410}}, {49, 410});
  EXPECT_TRUE(k.has_base());
  EXPECT_FALSE(k.Offer(99, 405));
  EXPECT_EQ(k.kept().iteration, 49);
  EXPECT_TRUE(k.Offer(149, 411));
  EXPECT_EQ(k.history().size(), 4u);
}

}  // namespace
}  // namespace r2f
