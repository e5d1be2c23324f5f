// Algorithm 1 (greedy critical-layer search) and backward elimination against synthetic accuracy
// oracles and the brute-force optimum.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <set>

#include "common/base/random.h"
#include "common/ir/graph.h"
#include "common/ir/model_zoo.h"
#include "server/search/critical_layers.h"
#include "server/search/search.h"

namespace r2f {
namespace {

// Accuracy = base + sum of the protected layers' gains (no interactions).
AccuracyOracle Additive(const std::map<uint32_t, double>& gain, double base = 50) {
  return [gain, base](const std::vector<uint32_t>& s, int) -> Result<double> {
    double a = base;
    for (uint32_t id : s) a += gain.at(id);
    return a;
  };
}

TEST(CriticalLayers, GreedyTakesTheBestLayersUntilTheBudgetWouldBreak) {
  const std::vector<uint32_t> layers{1, 4, 7, 9, 12};
  const std::vector<double> cost{10, 10, 10, 10, 10};  // r = 2 * k / 5 for k layers
  auto oracle = Additive({{1, 1.0}, {4, 5.0}, {7, 3.0}, {9, 0.5}, {12, 4.0}});
  auto r = GreedyCriticalLayerSearch(layers, cost, /*r_max=*/0.8, oracle);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  // Two layers fit (r = 0.8); the third (r = 1.2) is measured, then removed again.
  EXPECT_EQ(r->protected_layers, (std::vector<uint32_t>{4, 12}));
  EXPECT_DOUBLE_EQ(r->overhead, 0.8);
  EXPECT_DOUBLE_EQ(r->accuracy, 59.0);
  ASSERT_EQ(r->trajectory.size(), 2u);
  EXPECT_DOUBLE_EQ(r->trajectory[0].accuracy, 55.0);
  EXPECT_EQ(r->evaluations, 5 + 4 + 3);
  EXPECT_EQ(r->evaluations, ExpectedGreedyEvaluations(5, 2));
}

TEST(CriticalLayers, EvaluationCountMatchesTheClosedFormForEveryBudget) {
  Rng rng(3);
  const int L = 9;
  std::vector<uint32_t> layers(L);
  std::vector<double> cost(L);
  std::map<uint32_t, double> gain;
  for (int i = 0; i < L; ++i) {
    layers[i] = 2 * i + 1;
    cost[i] = 1 + rng.Below(20);
    gain[layers[i]] = rng.UniformDouble();
  }
  for (double r_max : {0.0, 0.05, 0.2, 0.5, 1.0, 1.5, 2.0}) {
    auto r = GreedyCriticalLayerSearch(layers, cost, r_max, Additive(gain));
    ASSERT_TRUE(r.ok());
    const int64_t s = static_cast<int64_t>(r->protected_layers.size());
    EXPECT_EQ(r->evaluations, ExpectedGreedyEvaluations(L, s)) << "r_max " << r_max;
    EXPECT_LE(r->overhead, r_max + 1e-12);
    if (r_max >= 2.0) {
      EXPECT_EQ(s, L) << "full TMR fits r = 2";
    }
    // The paper's form sum_{k=s'+1}^{L} k with s' = L - s - 1 counts the same evaluations.
    int64_t paper = 0;
    for (int64_t k = (L - s - 1) + 1; k <= L; ++k) paper += k;
    EXPECT_EQ(r->evaluations, paper);
  }
}

TEST(CriticalLayers, CandidatesOfOneStepShareTheStepNumber) {
  std::map<int, std::set<size_t>> sizes_by_step;
  AccuracyOracle oracle = [&](const std::vector<uint32_t>& s, int step) -> Result<double> {
    sizes_by_step[step].insert(s.size());
    return static_cast<double>(s.back());
  };
  auto r = GreedyCriticalLayerSearch({1, 2, 3, 4}, {1, 1, 1, 1}, 1.0, oracle);
  ASSERT_TRUE(r.ok());
  for (const auto& [step, sizes] : sizes_by_step) {
    EXPECT_EQ(sizes, (std::set<size_t>{static_cast<size_t>(step) + 1})) << "step " << step;
  }
}

TEST(CriticalLayers, GreedyAgreesWithBruteForceOnIndependentEqualCostLayers) {
  Rng rng(11);
  const std::vector<uint32_t> layers{0, 1, 2, 3, 4, 5, 6, 7};
  const std::vector<double> cost(8, 5.0);
  for (int trial = 0; trial < 20; ++trial) {
    std::map<uint32_t, double> gain;
    for (uint32_t id : layers) gain[id] = rng.UniformDouble();
    auto greedy = GreedyCriticalLayerSearch(layers, cost, 0.5, Additive(gain));
    auto brute = BruteForceCriticalLayerSearch(layers, cost, 0.5, Additive(gain));
    ASSERT_TRUE(greedy.ok() && brute.ok());
    EXPECT_DOUBLE_EQ(greedy->accuracy, brute->accuracy) << "trial " << trial;
    EXPECT_EQ(brute->evaluations, 1 + 8 + 28);  // sets of size 0, 1, 2 (r <= 0.5)
  }
}

TEST(CriticalLayers, GreedyCanMissTheOptimumWhenCostsDiffer) {
  // One expensive layer with the best single gain blocks two cheap ones worth more together:
  // Algorithm 1 ranks by accuracy, not by accuracy per cost.
  const std::vector<uint32_t> layers{1, 2, 3};
  const std::vector<double> cost{6, 3, 3};  // total 12; r_max 1.0 allows cost 6
  auto oracle = Additive({{1, 3.0}, {2, 2.0}, {3, 2.0}});
  auto greedy = GreedyCriticalLayerSearch(layers, cost, 1.0, oracle);
  auto brute = BruteForceCriticalLayerSearch(layers, cost, 1.0, oracle);
  ASSERT_TRUE(greedy.ok() && brute.ok());
  EXPECT_EQ(greedy->protected_layers, (std::vector<uint32_t>{1}));
  EXPECT_EQ(brute->protected_layers, (std::vector<uint32_t>{2, 3}));
  EXPECT_LT(greedy->accuracy, brute->accuracy);
}

TEST(CriticalLayers, BackwardEvaluationCountIsThePapersClosedForm) {
  Rng rng(5);
  const int L = 9;
  std::vector<uint32_t> layers(L);
  std::vector<double> cost(L);
  std::map<uint32_t, double> gain;
  for (int i = 0; i < L; ++i) {
    layers[i] = 3 * i;
    cost[i] = 1 + rng.Below(20);
    gain[layers[i]] = rng.UniformDouble();
  }
  for (double r_max : {0.0, 0.05, 0.2, 0.5, 1.0, 1.5, 2.0}) {
    auto r = BackwardCriticalLayerSearch(layers, cost, r_max, Additive(gain));
    ASSERT_TRUE(r.ok());
    const int64_t s = static_cast<int64_t>(r->protected_layers.size());
    EXPECT_EQ(r->evaluations, (L + s + 1) * (L - s) / 2) << "r_max " << r_max;
    EXPECT_EQ(r->evaluations, ExpectedBackwardEvaluations(L, s));
    EXPECT_LE(r->overhead, r_max + 1e-12);
    ASSERT_EQ(r->trajectory.size(), static_cast<size_t>(L - s));
    // Each step drops exactly one layer and the last step is the first set that fits.
    for (size_t k = 0; k < r->trajectory.size(); ++k) {
      EXPECT_EQ(r->trajectory[k].protected_layers.size(), static_cast<size_t>(L) - k - 1);
    }
    if (!r->trajectory.empty() && r->trajectory.size() > 1) {
      EXPECT_GT(r->trajectory[r->trajectory.size() - 2].overhead, r_max);
    }
  }
}

TEST(CriticalLayers, BackwardDropsTheLeastValuableLayerFirst) {
  const std::vector<uint32_t> layers{1, 4, 7, 9, 12};
  const std::vector<double> cost{10, 10, 10, 10, 10};
  auto r = BackwardCriticalLayerSearch(
      layers, cost, /*r_max=*/0.8, Additive({{1, 1.0}, {4, 5.0}, {7, 3.0}, {9, 0.5}, {12, 4.0}}));
  ASSERT_TRUE(r.ok());
  // Removes 9, then 1, then 7: the two most valuable layers stay (r = 0.8).
  EXPECT_EQ(r->protected_layers, (std::vector<uint32_t>{4, 12}));
  EXPECT_DOUBLE_EQ(r->accuracy, 59.0);
  EXPECT_EQ(r->evaluations, 5 + 4 + 3);
  // Full TMR within budget: nothing to evaluate.
  auto full = BackwardCriticalLayerSearch(layers, cost, 2.0, Additive({}));
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->protected_layers, layers);
  EXPECT_EQ(full->evaluations, 0);
}

TEST(CriticalLayers, GreedyFitKeepsAddingCheaperLayersThatStillFit) {
  // Layer 1 is best but expensive; after it, the best remaining layer (2) no longer fits, so
  // Algorithm 1 stops, while greedy_fit measures only layers 3 and 4 and takes the better one.
  const std::vector<uint32_t> layers{1, 2, 3, 4};
  const std::vector<double> cost{4, 4, 1, 1};  // total 10: r = 0.2 per unit of cost
  auto oracle = Additive({{1, 5.0}, {2, 4.0}, {3, 1.0}, {4, 2.0}});
  auto paper = GreedyCriticalLayerSearch(layers, cost, 1.1, oracle);
  auto fit = GreedyCriticalLayerSearch(layers, cost, 1.1, oracle, /*only_affordable=*/true);
  ASSERT_TRUE(paper.ok() && fit.ok());
  EXPECT_EQ(paper->protected_layers, (std::vector<uint32_t>{1}));
  EXPECT_EQ(fit->protected_layers, (std::vector<uint32_t>{1, 4}));
  EXPECT_DOUBLE_EQ(fit->overhead, 1.0);
  // Step 0: all 4 fit; step 1: only 3 and 4 (r 1.0) are measured; step 2: 3 would make 1.2.
  EXPECT_EQ(fit->evaluations, 4 + 2);
  for (const SearchEvaluation& e : fit->log) EXPECT_LE(e.overhead, 1.1);
}

TEST(CriticalLayers, OverheadIsTwiceTheProtectedShareOfCompute) {
  EXPECT_DOUBLE_EQ(RedundantOverhead({1, 2, 3}, {1, 1, 2}, {3}), 1.0);
  EXPECT_DOUBLE_EQ(RedundantOverhead({1, 2, 3}, {1, 1, 2}, {1, 2, 3}), 2.0);
  EXPECT_DOUBLE_EQ(RedundantOverhead({1, 2, 3}, {1, 1, 2}, {}), 0.0);
}

// search.candidates: kept in graph order with their costs; one that is no MAC layer, or one
// listed twice, is named.
TEST(CriticalLayers, CandidatesAreMacLayersEachListedOnce) {
  pb::Graph graph = BuildNetwork(DefaultNetworkSpec("resnet18").value()).value();
  const std::vector<uint32_t> macs = MacLayerIds(graph);
  ASSERT_GE(macs.size(), 3u);
  SearchConfig c;
  c.candidates = {macs[2], macs[0]};
  SearchRun run;
  ASSERT_TRUE(ChooseCandidates(c, graph, accel::AcceleratorConfig{}, &run).ok());
  EXPECT_EQ(run.layers, (std::vector<uint32_t>{macs[0], macs[2]}));
  ASSERT_EQ(run.cost.size(), 2u);
  EXPECT_GT(run.cost[0], 0.0);

  uint32_t not_mac = 0;
  while (std::find(macs.begin(), macs.end(), not_mac) != macs.end()) ++not_mac;
  for (const auto& [list, text] : std::vector<std::pair<std::vector<uint32_t>, std::string>>{
           {{macs[0], not_mac}, "layer " + std::to_string(not_mac) + " is not a MAC layer"},
           {{macs[1], macs[0], macs[1]}, "layer " + std::to_string(macs[1]) + " is listed twice"},
       }) {
    c.candidates = list;
    SearchRun r;
    Status st = ChooseCandidates(c, graph, accel::AcceleratorConfig{}, &r);
    EXPECT_EQ(st.code(), Status::Code::kInvalidArgument) << st.ToString();
    EXPECT_NE(st.message().find(text), std::string::npos) << st.ToString();
  }
}

TEST(CriticalLayers, BadInputsAreRefused) {
  auto oracle = Additive({{1, 1.0}});
  EXPECT_FALSE(GreedyCriticalLayerSearch({}, {}, 0.2, oracle).ok());
  EXPECT_FALSE(GreedyCriticalLayerSearch({1}, {1, 2}, 0.2, oracle).ok());
  EXPECT_FALSE(GreedyCriticalLayerSearch({1}, {0}, 0.2, oracle).ok());
  EXPECT_FALSE(GreedyCriticalLayerSearch({1}, {1}, -1, oracle).ok());
  std::vector<uint32_t> many(21);
  std::iota(many.begin(), many.end(), 0u);
  EXPECT_FALSE(BruteForceCriticalLayerSearch(many, std::vector<double>(21, 1.0), 0.2, oracle).ok());
  AccuracyOracle failing = [](const std::vector<uint32_t>&, int) -> Result<double> {
    return Status::Unavailable("device offline");
  };
  auto r = GreedyCriticalLayerSearch({1, 2}, {1, 1}, 1.0, failing);
  EXPECT_EQ(r.status().code(), Status::Code::kUnavailable);
}

}  // namespace
}  // namespace r2f
