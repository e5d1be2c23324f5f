#include "tests/bench/ratio_reporter.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace r2f::bench {
namespace {

using Run = benchmark::BenchmarkReporter::Run;

// One repetition of `name` that took `seconds` per iteration.
Run Repetition(const std::string& name, int64_t index, double seconds) {
  Run run;
  run.run_name.function_name = name;
  run.run_type = Run::RT_Iteration;
  run.repetition_index = index;
  run.repetitions = 0;
  run.iterations = 10;
  run.time_unit = benchmark::kSecond;
  run.real_accumulated_time = seconds * 10;
  return run;
}

RatioSpec AtMost(double target) { return {"a/b", "BM_A", "BM_B", target, true}; }

TEST(RatioReporterTest, RatioOfTheMedians) {
  TimeCollector times;
  times.Add({Repetition("BM_A", 0, 2.0), Repetition("BM_A", 1, 3.0), Repetition("BM_A", 2, 10.0)});
  times.Add({Repetition("BM_B", 0, 1.0), Repetition("BM_B", 1, 1.5), Repetition("BM_B", 2, 1.0)});
  const std::vector<RatioResult> r = times.Ratios({AtMost(2.5)});
  ASSERT_EQ(r.size(), 1u);
  ASSERT_TRUE(r[0].measured);
  EXPECT_DOUBLE_EQ(r[0].numerator_seconds, 3.0);
  EXPECT_DOUBLE_EQ(r[0].denominator_seconds, 1.0);
  EXPECT_DOUBLE_EQ(r[0].ratio, 3.0);
  EXPECT_FALSE(r[0].ok);
}

TEST(RatioReporterTest, PairsRepetitionsOfTheSameIndex) {
  TimeCollector times;
  // Reported out of index order.
  times.Add({Repetition("BM_A", 2, 0.9), Repetition("BM_A", 0, 1.0), Repetition("BM_A", 1, 1.2)});
  times.Add({Repetition("BM_B", 1, 1.0), Repetition("BM_B", 2, 1.0), Repetition("BM_B", 0, 0.8)});
  const RatioResult r = times.Ratios({AtMost(1.05)})[0];
  EXPECT_EQ(r.pairs, 3);
  EXPECT_EQ(r.pairs_ok, 1);  // 0.9; not 1.25 (repetition 0) or 1.2 (repetition 1)
  EXPECT_DOUBLE_EQ(r.pair_low, 0.9);
  EXPECT_DOUBLE_EQ(r.pair_high, 1.25);
  const std::string table = RatiosTable({r});
  EXPECT_NE(table.find("by repetition 0.900-1.250, target held in 1 of 3"), std::string::npos)
      << table;
  const std::string json = RatiosJson({r});
  EXPECT_NE(json.find("\"pairs\": 3,"), std::string::npos) << json;
  EXPECT_NE(json.find("\"pairs_ok\": 1,"), std::string::npos) << json;
  EXPECT_NE(json.find("\"pair_high\": 1.25"), std::string::npos) << json;
}

TEST(RatioReporterTest, AtLeastTargetsCountPairsAboveIt) {
  TimeCollector times;
  times.Add({Repetition("BM_A", 0, 31.0), Repetition("BM_A", 1, 29.0)});
  times.Add({Repetition("BM_B", 0, 1.0), Repetition("BM_B", 1, 1.0)});
  RatioSpec spec = AtMost(30);
  spec.at_most = false;
  const RatioResult r = times.Ratios({spec})[0];
  EXPECT_EQ(r.pairs, 2);
  EXPECT_EQ(r.pairs_ok, 1);
}

TEST(RatioReporterTest, UnpairedOrRepeatedIndexesGiveNoPair) {
  TimeCollector times;
  times.Add({Repetition("BM_A", 0, 1.0), Repetition("BM_A", 1, 1.0), Repetition("BM_A", 1, 2.0),
             Repetition("BM_A", 2, 1.0)});
  times.Add({Repetition("BM_B", 0, 1.0), Repetition("BM_B", 1, 1.0)});
  const RatioResult r = times.Ratios({AtMost(2)})[0];
  EXPECT_EQ(r.pairs, 1);  // index 1 is ambiguous, index 2 has no denominator
  const std::string table = RatiosTable({r});
  EXPECT_EQ(table.find("by repetition"), std::string::npos) << table;  // one pair: no spread
}

TEST(RatioReporterTest, MissingBenchmarkIsNotMeasured) {
  TimeCollector times;
  times.Add({Repetition("BM_A", 0, 1.0)});
  const RatioResult r = times.Ratios({AtMost(2)})[0];
  EXPECT_FALSE(r.measured);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.pairs, 0);
  EXPECT_NE(RatiosTable({r}).find("not measured"), std::string::npos);
  EXPECT_NE(RatiosJson({r}).find("\"ratio\": null"), std::string::npos);
}

}  // namespace
}  // namespace r2f::bench
