// TMR: the bitwise voter, layer-wise / network-wise / partial TMR through the executor, the
// reference chain of training mode, and the shared clean GEMM of identical chain inputs.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "accel_sim/accelerator.h"
#include "accel_sim/graph_executor.h"
#include "accel_sim/tmr_voter.h"
#include "tests/accel_sim/accel_models.h"

namespace r2f::accel {
namespace {

TEST(VoterTest, BitwiseMajority) {
  EXPECT_EQ(MajorityVote(0b01100, 0b01010, 0b00110), 0b01110);
  EXPECT_EQ(MajorityVote(-1, 0, -1), -1);
  EXPECT_EQ(MajorityVote(-128, 127, -128), -128);
}

TEST(VoterTest, OutvotesAnySingleCorruptedReplica) {
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 2000; ++trial) {
    const auto good = static_cast<int8_t>(rng());
    const auto bad = static_cast<int8_t>(rng());  // any corruption, many bits at once
    EXPECT_EQ(MajorityVote(bad, good, good), good);
    EXPECT_EQ(MajorityVote(good, bad, good), good);
    EXPECT_EQ(MajorityVote(good, good, bad), good);
  }
  // Buffers, voting in place into one of the inputs.
  std::vector<int8_t> a(100), b(100), c(100);
  for (size_t i = 0; i < a.size(); ++i) a[i] = b[i] = c[i] = static_cast<int8_t>(rng());
  const std::vector<int8_t> want = a;
  for (size_t i = 0; i < a.size(); ++i)
    (i % 3 == 0 ? a : i % 3 == 1 ? b : c)[i] ^= static_cast<int8_t>(rng() | 1);
  VoteBuffers(a.data(), b.data(), c.data(), 100, a.data());
  EXPECT_EQ(a, want);
}

class TmrTest : public ::testing::Test {
 protected:
  void SetUp() override {
    graph_ = testing::SmallGraphs()[0];
    model_ = MakeRandomQuantizedModel(graph_, 21).value();
    accel_ = Accelerator::Create(model_, AcceleratorConfig{}).value();
    compiled_ = testing::Compile(model_);
    per_image_ = NumElements(graph_.input_shape());
    pixels_ = testing::RandomPixels(static_cast<size_t>(per_image_ * 4), 6);
  }
  ImageBatch Batch() { return ImageBatch{pixels_.data(), 4, {0, 1, 2, 3}}; }
  TmrConfig Mode(TmrMode mode, std::vector<uint32_t> layers = {}) {
    TmrConfig t;
    t.mode = mode;
    t.protected_layers = std::move(layers);
    return t;
  }
  // Runs chains with the given replica sets through the executor directly.
  ChainWorkspace RunChains(const std::vector<std::vector<uint32_t>>& per_chain,
                           const FaultConfig& f, uint64_t tag) {
    ChainRequest req;
    req.pixels = pixels_.data();
    req.batch = 4;
    req.sample_ids = {0, 1, 2, 3};
    req.faults = f;
    req.execution_tag = tag;
    for (const auto& replicas : per_chain) {
      ChainSpec spec;
      spec.replicas.assign(compiled_->mac_layers().size(), replicas);
      req.chains.push_back(spec);
    }
    ChainWorkspace ws;
    EXPECT_TRUE(ExecuteChains(*compiled_, req, &ws).ok());
    return ws;
  }
  std::vector<int8_t> NodeOut(const ChainWorkspace& ws, int chain, uint32_t node) {
    const int8_t* p = ws.node_output(chain, node);
    return std::vector<int8_t>(p, p + compiled_->nodes()[node].elements * 4);
  }
  // Share of identical elements over all MAC-layer outputs.
  static double Similarity(const std::vector<Int8Tensor>& a, const std::vector<Int8Tensor>& b) {
    double same = 0, total = 0;
    for (size_t m = 0; m < a.size(); ++m) {
      for (size_t i = 0; i < a[m].data.size(); ++i) same += a[m].data[i] == b[m].data[i];
      total += static_cast<double>(a[m].data.size());
    }
    return same / total;
  }

  pb::Graph graph_;
  pb::QuantizedModel model_;
  std::unique_ptr<Accelerator> accel_;
  std::unique_ptr<CompiledModel> compiled_;
  int64_t per_image_ = 0;
  std::vector<uint8_t> pixels_;
};

TEST_F(TmrTest, EveryModeEqualsCleanAtBerZero) {
  auto clean = accel_->Infer(Batch(), FaultConfig{0.0}, TmrConfig{}, 1, true);
  ASSERT_TRUE(clean.ok());
  for (TmrMode mode : {TmrMode::kLayerWise, TmrMode::kNetworkWise, TmrMode::kPartial}) {
    auto r =
        accel_->Infer(Batch(), FaultConfig{0.0}, Mode(mode, {accel_->mac_layers()[1]}), 1, true);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->logits.data, clean->logits.data);
    for (size_t m = 0; m < r->layer_outputs.size(); ++m) {
      EXPECT_EQ(r->layer_outputs[m].data, clean->layer_outputs[m].data);
    }
  }
  auto train = accel_->RunTraining(Batch(), FaultConfig{0.0}, Mode(TmrMode::kNetworkWise), 1);
  ASSERT_TRUE(train.ok());
  for (size_t m = 0; m < train->faulty.size(); ++m) {
    EXPECT_EQ(train->faulty[m].data, clean->layer_outputs[m].data);
    EXPECT_EQ(train->reference[m].data, clean->layer_outputs[m].data);
  }
}

TEST_F(TmrTest, LayerWiseVotesThreeIndependentExecutionsOfTheSameInput) {
  // The first MAC layer of an LW chain reads the same input as three single chains using
  // replicas 0, 1 and 2: its output is their bitwise vote.
  FaultConfig f;
  f.ber = 4e-3;
  ChainWorkspace singles = RunChains({{0}, {1}, {2}}, f, 9);
  ChainWorkspace lw = RunChains({{0, 1, 2}}, f, 9);
  const uint32_t first = compiled_->mac_layer_ids()[0];
  const std::vector<int8_t> r0 = NodeOut(singles, 0, first), r1 = NodeOut(singles, 1, first),
                            r2 = NodeOut(singles, 2, first);
  ASSERT_NE(r0, r1);  // the replicas' faults are independent
  std::vector<int8_t> voted(r0.size());
  VoteBuffers(r0.data(), r1.data(), r2.data(), static_cast<int64_t>(r0.size()), voted.data());
  EXPECT_EQ(NodeOut(lw, 0, first), voted);
  // Three times the exposure of one execution.
  for (int s = 0; s < kNumFaultSites; ++s) {
    EXPECT_EQ(lw.fault_stats(0)[0].exposed_bits[s], 3 * singles.fault_stats(0)[0].exposed_bits[s]);
    EXPECT_EQ(lw.fault_stats(0)[0].flips[s], singles.fault_stats(0)[0].flips[s] +
                                                 singles.fault_stats(1)[0].flips[s] +
                                                 singles.fault_stats(2)[0].flips[s]);
  }
}

TEST_F(TmrTest, NetworkWiseVotesThreeWholeChains) {
  FaultConfig f;
  f.ber = 2e-3;
  auto nw = accel_->Infer(Batch(), f, Mode(TmrMode::kNetworkWise), 5, true);
  ASSERT_TRUE(nw.ok());
  ChainWorkspace chains = RunChains({{0}, {1}, {2}}, f, 5);
  for (size_t m = 0; m < nw->layer_outputs.size(); ++m) {
    const uint32_t id = compiled_->mac_layer_ids()[m];
    const auto a = NodeOut(chains, 0, id), b = NodeOut(chains, 1, id), c = NodeOut(chains, 2, id);
    std::vector<int8_t> voted(a.size());
    VoteBuffers(a.data(), b.data(), c.data(), static_cast<int64_t>(a.size()), voted.data());
    EXPECT_EQ(nw->layer_outputs[m].data, voted) << "layer " << id;
  }
  for (const LayerCycles& c : nw->stats.cycles) EXPECT_EQ(c.executions, 3);
}

TEST_F(TmrTest, SharedCleanGemmEqualsSeparateRuns) {
  // Chains whose inputs agree share one clean GEMM per image (with output flips only, the first
  // layers' inputs agree across chains); a lone execution with input flips runs its own GEMM on
  // its flipped input. Neither may change any result.
  for (const auto& sites : {std::array<bool, kNumFaultSites>{false, false, false, true},
                            std::array<bool, kNumFaultSites>{true, true, true, true},
                            std::array<bool, kNumFaultSites>{false, true, false, false}}) {
    FaultConfig f;
    f.ber = 2e-3;
    f.sites = sites;
    const std::vector<std::vector<uint32_t>> specs = {{0}, {1}, {0, 1, 2}, {0}};
    ChainWorkspace together = RunChains(specs, f, 3);
    for (size_t c = 0; c < specs.size(); ++c) {
      ChainWorkspace single = RunChains({specs[c]}, f, 3);
      for (const NodeInfo& n : compiled_->nodes()) {
        ASSERT_EQ(NodeOut(together, static_cast<int>(c), n.id), NodeOut(single, 0, n.id))
            << "chain " << c << " node " << n.id;
      }
    }
    // Chains 0 and 3 use the same replica index: the same faults, the same results.
    for (const NodeInfo& n : compiled_->nodes()) {
      ASSERT_EQ(NodeOut(together, 0, n.id), NodeOut(together, 3, n.id)) << "node " << n.id;
    }
  }
}

TEST_F(TmrTest, PartialTmrCoversTheListedLayersOnly) {
  FaultConfig f;
  f.ber = 2e-3;
  std::vector<uint32_t> all = accel_->mac_layers();
  auto lw = accel_->Infer(Batch(), f, Mode(TmrMode::kLayerWise), 2, true);
  auto partial_all = accel_->Infer(Batch(), f, Mode(TmrMode::kPartial, all), 2, true);
  auto none = accel_->Infer(Batch(), f, Mode(TmrMode::kNone), 2, true);
  auto partial_none = accel_->Infer(Batch(), f, Mode(TmrMode::kPartial, {}), 2, true);
  auto partial_one = accel_->Infer(Batch(), f, Mode(TmrMode::kPartial, {all[1]}), 2, true);
  ASSERT_TRUE(lw.ok() && partial_all.ok() && none.ok() && partial_none.ok() && partial_one.ok());
  EXPECT_EQ(partial_all->logits.data, lw->logits.data);
  EXPECT_EQ(partial_none->logits.data, none->logits.data);
  for (size_t m = 0; m < all.size(); ++m) {
    EXPECT_EQ(partial_all->layer_outputs[m].data, lw->layer_outputs[m].data);
    EXPECT_EQ(partial_none->layer_outputs[m].data, none->layer_outputs[m].data);
    EXPECT_EQ(partial_one->stats.cycles[m].executions, m == 1 ? 3 : 1);
    EXPECT_EQ(lw->stats.cycles[m].executions, 3);
    EXPECT_EQ(none->stats.cycles[m].executions, 1);
    EXPECT_EQ(lw->stats.faults[m].exposed_bits[0], 3 * none->stats.faults[m].exposed_bits[0]);
  }
  // Layer 0 is unprotected in partial_one and sees replica 0's faults, like kNone.
  EXPECT_EQ(partial_one->layer_outputs[0].data, none->layer_outputs[0].data);
  int64_t total = 0;
  for (const LayerCycles& c : partial_one->stats.cycles) {
    total += (c.compute_cycles + c.stall_cycles) * c.executions;
  }
  EXPECT_EQ(partial_one->stats.total_cycles, total);
}

TEST_F(TmrTest, RedundancyRaisesOutputSimilarity) {
  FaultConfig f;
  f.ber = 2e-3;
  double sim_none = 0, sim_lw = 0, sim_nw = 0;
  for (uint64_t tag = 0; tag < 4; ++tag) {
    auto clean = accel_->Infer(Batch(), FaultConfig{0.0}, TmrConfig{}, tag, true);
    auto none = accel_->Infer(Batch(), f, Mode(TmrMode::kNone), tag, true);
    auto lw = accel_->Infer(Batch(), f, Mode(TmrMode::kLayerWise), tag, true);
    auto nw = accel_->Infer(Batch(), f, Mode(TmrMode::kNetworkWise), tag, true);
    ASSERT_TRUE(clean.ok() && none.ok() && lw.ok() && nw.ok());
    sim_none += Similarity(none->layer_outputs, clean->layer_outputs);
    sim_lw += Similarity(lw->layer_outputs, clean->layer_outputs);
    sim_nw += Similarity(nw->layer_outputs, clean->layer_outputs);
  }
  EXPECT_LT(sim_none, 0.98 * 4);  // the faults are visible
  EXPECT_GT(sim_lw, sim_none);
  EXPECT_GT(sim_nw, sim_none);
  // The paper's observation: layer-wise voting stops errors before they spread.
  EXPECT_GT(sim_lw, sim_nw);
}

TEST_F(TmrTest, TrainingReferenceIsAnIndependentLayerWiseChain) {
  FaultConfig f;
  f.ber = 2e-3;
  auto train = accel_->RunTraining(Batch(), f, Mode(TmrMode::kLayerWise), 6);
  ASSERT_TRUE(train.ok());
  ChainWorkspace ref = RunChains({{3, 4, 5}}, f, 6);
  ChainWorkspace deployed = RunChains({{0, 1, 2}}, f, 6);
  bool differs = false;
  for (size_t m = 0; m < train->reference.size(); ++m) {
    const uint32_t id = compiled_->mac_layer_ids()[m];
    EXPECT_EQ(train->reference[m].data, NodeOut(ref, 0, id));
    EXPECT_EQ(train->faulty[m].data, NodeOut(deployed, 0, id));
    differs |= train->reference[m].data != train->faulty[m].data;
    EXPECT_EQ(train->reference_stats.cycles[m].executions, 3);
    EXPECT_EQ(train->reference_stats.faults[m].exposed_bits[2],
              train->faulty_stats.faults[m].exposed_bits[2]);
  }
  EXPECT_TRUE(differs);  // same TMR mode, independent faults
}

}  // namespace
}  // namespace r2f::accel
