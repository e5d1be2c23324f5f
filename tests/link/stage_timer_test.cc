#include "common/link/stage_timer.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <limits>
#include <random>
#include <thread>

namespace r2f {
namespace {

// JSON is a subset of YAML's flow style, so yaml-cpp (already a dependency) can check that our
// lines parse and carry the values we wrote.
YAML::Node ParseJson(const std::string& line) {
  YAML::Node node = YAML::Load(line);
  EXPECT_TRUE(node.IsMap()) << line;
  return node;
}

IterationTiming RandomTiming(std::mt19937* rng, int64_t iteration) {
  std::uniform_real_distribution<double> seconds(0.0, 3.0);
  IterationTiming t;
  t.iteration = iteration;
  for (size_t i = 0; i < kNumStages; ++i) {
    t.modelled_s[i] = seconds(*rng);
    t.measured_s[i] = seconds(*rng);
  }
  t.uplink_bytes = (*rng)() + (uint64_t{1} << 40);  // beyond 32 bits on purpose
  t.downlink_bytes = (*rng)();
  return t;
}

TEST(StageTimerTest, StageNamesFollowFigureSix) {
  const char* expected[] = {"fp", "tmr", "increment", "codec", "uplink", "bp", "downlink"};
  ASSERT_EQ(AllStages().size(), std::size(expected));
  for (size_t i = 0; i < kNumStages; ++i) {
    Stage s = AllStages()[i];
    EXPECT_EQ(StageIndex(s), i);
    EXPECT_STREQ(StageName(s), expected[i]);
    Result<Stage> back = StageFromName(expected[i]);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, s);
  }
  EXPECT_FALSE(StageFromName("FP").ok());
  EXPECT_FALSE(StageFromName("").ok());
}

TEST(StageTimerTest, JsonLineRoundTripsEveryValue) {
  std::mt19937 rng(3);
  for (int64_t it = 0; it < 20; ++it) {
    IterationTiming t = RandomTiming(&rng, it * 1000003 - 5);
    std::map<std::string, double> extra = {{"ber", 1e-5}, {"similarity", 0.8125}};
    std::string line = ToJsonLine(t, extra);
    EXPECT_EQ(line.find('\n'), std::string::npos);
    YAML::Node n = ParseJson(line);
    EXPECT_EQ(n["iteration"].as<int64_t>(), t.iteration);
    for (Stage s : AllStages()) {
      // Shortest round-trip formatting: the exact double comes back.
      EXPECT_EQ(n["modelled_s"][StageName(s)].as<double>(), t.modelled(s)) << line;
      EXPECT_EQ(n["measured_s"][StageName(s)].as<double>(), t.measured(s)) << line;
    }
    EXPECT_EQ(n["modelled_total_s"].as<double>(), t.ModelledTotal());
    EXPECT_EQ(n["measured_total_s"].as<double>(), t.MeasuredTotal());
    EXPECT_EQ(n["uplink_bytes"].as<uint64_t>(), t.uplink_bytes);
    EXPECT_EQ(n["downlink_bytes"].as<uint64_t>(), t.downlink_bytes);
    EXPECT_EQ(n["extra"]["ber"].as<double>(), 1e-5);
    EXPECT_EQ(n["extra"]["similarity"].as<double>(), 0.8125);
  }
}

TEST(StageTimerTest, JsonEscapesKeysAndNullsNonFinite) {
  IterationTiming t;
  t.modelled(Stage::kBp) = std::numeric_limits<double>::quiet_NaN();
  t.measured(Stage::kFp) = std::numeric_limits<double>::infinity();
  const std::string odd_key = "a\"b\\c\n\x01 d";
  std::string line = ToJsonLine(t, {{odd_key, 2.5}});
  EXPECT_EQ(line.find('\n'), std::string::npos) << line;
  EXPECT_NE(line.find("\"bp\":null"), std::string::npos) << line;
  EXPECT_NE(line.find("\"fp\":null"), std::string::npos) << line;
  YAML::Node n = ParseJson(line);
  EXPECT_EQ(n["extra"][odd_key].as<double>(), 2.5) << line;
  // No extras: no "extra" member.
  EXPECT_EQ(ToJsonLine(IterationTiming{}).find("extra"), std::string::npos);
}

TEST(StageTimerTest, TotalsAndShares) {
  std::mt19937 rng(11);
  TimingTotals totals;
  std::vector<IterationTiming> runs;
  for (int i = 0; i < 5; ++i) runs.push_back(RandomTiming(&rng, i));
  for (const auto& r : runs) totals.Add(r);
  EXPECT_EQ(totals.iterations, 5);
  double grand = 0;
  for (size_t s = 0; s < kNumStages; ++s) {
    double sum = 0, msum = 0;
    for (const auto& r : runs) {
      sum += r.modelled_s[s];
      msum += r.measured_s[s];
    }
    EXPECT_NEAR(totals.modelled_s[s], sum, 1e-12);
    EXPECT_NEAR(totals.measured_s[s], msum, 1e-12);
    grand += sum;
  }
  EXPECT_NEAR(totals.ModelledTotal(), grand, 1e-9);
  StageArray shares = totals.Shares();
  double share_sum = 0;
  for (size_t s = 0; s < kNumStages; ++s) {
    EXPECT_NEAR(shares[s], totals.modelled_s[s] / grand, 1e-12);
    share_sum += shares[s];
  }
  EXPECT_NEAR(share_sum, 1.0, 1e-12);
  uint64_t up = 0;
  for (const auto& r : runs) up += r.uplink_bytes;
  EXPECT_EQ(totals.uplink_bytes, up);

  TimingTotals empty;
  for (double v : empty.Shares()) EXPECT_EQ(v, 0.0);
  for (double v : empty.MeasuredShares()) EXPECT_EQ(v, 0.0);
}

// A line may carry two validations (Base's joins iteration 0's); the totals count them all, and
// lines written before the count was kept count as one.
TEST(StageTimerTest, ValidationsAreCountedPerValidationNotPerLine) {
  IterationTiming first;
  first.validation_measured_s = 2.0;
  first.validation_modelled_s = 1.0;
  first.validations = 2;
  IterationTiming none;
  auto back = IterationTimingFromJson(ToJsonLine(first, {}));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->validations, 2);
  IterationTiming earlier;  // as written before the count was kept: no "count"
  earlier.validation_measured_s = earlier.validation_modelled_s = 0.5;
  std::string old_line = ToJsonLine(earlier, {});
  const size_t count = old_line.find(",\"count\":0");
  ASSERT_NE(count, std::string::npos) << old_line;
  old_line.erase(count, 10);
  auto old = IterationTimingFromJson(old_line);
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_EQ(old->validations, 1);
  TimingTotals totals;
  for (const IterationTiming& t : {*back, none, *old}) totals.Add(t);
  EXPECT_EQ(totals.validations, 3);
  EXPECT_DOUBLE_EQ(totals.validation_measured_s, 2.5);
}

TEST(StageTimerTest, NormalisationUsesPerIterationMeans) {
  // Baseline (DRM): 2 iterations of 10 s each, all uplink.
  TimingTotals drm;
  IterationTiming d;
  d.modelled(Stage::kUplink) = 10.0;
  drm.Add(d);
  drm.Add(d);
  // Ours: 4 iterations of fp 1 s + uplink 2 s: 3 s per iteration vs 10 s.
  TimingTotals ours;
  IterationTiming o;
  o.modelled(Stage::kFp) = 1.0;
  o.modelled(Stage::kUplink) = 2.0;
  for (int i = 0; i < 4; ++i) ours.Add(o);
  StageArray norm = ours.NormalisedTo(drm);
  EXPECT_NEAR(norm[StageIndex(Stage::kFp)], 0.1, 1e-12);
  EXPECT_NEAR(norm[StageIndex(Stage::kUplink)], 0.2, 1e-12);
  EXPECT_EQ(norm[StageIndex(Stage::kBp)], 0.0);
  for (double v : ours.NormalisedTo(TimingTotals{})) EXPECT_EQ(v, 0.0);

  YAML::Node n = ParseJson(SummaryToJson(ours, &drm));
  EXPECT_EQ(n["iterations"].as<int64_t>(), 4);
  EXPECT_NEAR(n["normalised_total"].as<double>(), 0.3, 1e-12);
  EXPECT_NEAR(n["modelled_share"]["uplink"].as<double>(), 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(n["modelled_s"]["fp"].as<double>(), 4.0, 1e-12);
  EXPECT_FALSE(ParseJson(SummaryToJson(ours))["normalised"].IsDefined());
}

TEST(StageTimerTest, ScopedTimerAccumulatesWallTime) {
  IterationTiming t;
  {
    ScopedStageTimer timer(&t, Stage::kUplink);
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
  }
  EXPECT_GE(t.measured(Stage::kUplink), 0.003);
  EXPECT_EQ(t.modelled(Stage::kUplink), 0.0);  // transmissions are modelled elsewhere

  double first = t.measured(Stage::kUplink);
  {
    ScopedStageTimer timer(&t, Stage::kUplink);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_GE(t.measured(Stage::kUplink), first + 0.002);

  ScopedStageTimer host(&t, Stage::kCodec, ScopedStageTimer::Target::kMeasuredAndModelled);
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
  double took = host.Stop();
  EXPECT_GE(took, 0.001);
  EXPECT_EQ(host.Stop(), 0.0);  // once only
  EXPECT_EQ(t.measured(Stage::kCodec), took);
  EXPECT_EQ(t.modelled(Stage::kCodec), took);
  for (Stage s : {Stage::kFp, Stage::kTmr, Stage::kIncrement, Stage::kBp, Stage::kDownlink}) {
    EXPECT_EQ(t.measured(s), 0.0) << StageName(s);
  }
}

}  // namespace
}  // namespace r2f
