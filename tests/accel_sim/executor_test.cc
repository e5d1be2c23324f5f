// Whole networks: the fast executor against the naive reference executor, bit for bit, on the
// five zoo networks with random full-range parameters; the Accelerator API on top of it.
#include <gtest/gtest.h>

#include <vector>

#include "accel_sim/accelerator.h"
#include "common/ir/model_zoo.h"
#include "tests/accel_sim/accel_models.h"
#include "tests/accel_sim/accel_reference.h"

namespace r2f::accel {
namespace {

class ZooTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ZooTest, FastExecutorEqualsReferenceOnEveryNode) {
  const pb::Graph graph = BuildNetwork(*DefaultNetworkSpec(GetParam())).value();
  const pb::QuantizedModel model = MakeRandomQuantizedModel(graph, 17).value();
  auto compiled = testing::Compile(model);
  ASSERT_NE(compiled, nullptr);
  const int batch = 2;
  const std::vector<uint8_t> px =
      testing::RandomPixels(static_cast<size_t>(compiled->nodes()[0].elements * batch), 5);
  const auto fast = testing::FastExecute(*compiled, px.data(), batch);
  const testing::RefRun ref = testing::RefExecute(model, px.data(), batch);
  ASSERT_EQ(fast.size(), ref.nodes.size());
  int saturated_layers = 0;
  for (size_t i = 0; i < fast.size(); ++i) {
    ASSERT_EQ(fast[i], ref.nodes[i]) << "node " << i << " '" << graph.nodes(i).name() << "'";
    int extremes = 0;
    for (int8_t v : fast[i]) extremes += (v == 127 || v == -128);
    if (extremes * 2 > static_cast<int>(fast[i].size())) ++saturated_layers;
  }
  // The comparison means something only if values stay spread out through the network.
  EXPECT_LT(saturated_layers, static_cast<int>(fast.size()) / 4);
}

INSTANTIATE_TEST_SUITE_P(AllNetworks, ZooTest,
                         ::testing::Values("resnet18", "resnet50", "mobilenetv2", "shufflenetv2",
                                           "squeezenet"));

class AcceleratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    graph_ = testing::SmallGraphs()[0];
    model_ = MakeRandomQuantizedModel(graph_, 3).value();
    accel_ = Accelerator::Create(model_, AcceleratorConfig{}).value();
    per_image_ = NumElements(graph_.input_shape());
    pixels_ = testing::RandomPixels(static_cast<size_t>(per_image_ * 4), 8);
  }
  ImageBatch Batch(int first, int count) {
    ImageBatch b;
    b.pixels = pixels_.data() + first * per_image_;
    b.batch = count;
    for (int i = 0; i < count; ++i) b.sample_ids.push_back(static_cast<uint64_t>(first + i));
    return b;
  }
  pb::Graph graph_;
  pb::QuantizedModel model_;
  std::unique_ptr<Accelerator> accel_;
  int64_t per_image_ = 0;
  std::vector<uint8_t> pixels_;
};

TEST_F(AcceleratorTest, CleanInferMatchesReference) {
  auto r = accel_->Infer(Batch(0, 4), FaultConfig{0.0}, TmrConfig{}, 1, true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const testing::RefRun ref = testing::RefExecute(model_, pixels_.data(), 4);
  EXPECT_EQ(r->logits.batch, 4);
  EXPECT_EQ(r->logits.dims, std::vector<uint32_t>{graph_.num_classes()});
  EXPECT_EQ(r->logits.frac, model_.activation_frac(graph_.output()));
  EXPECT_EQ(r->logits.data, ref.nodes[graph_.output()]);
  ASSERT_EQ(r->layer_outputs.size(), accel_->mac_layers().size());
  for (size_t m = 0; m < accel_->mac_layers().size(); ++m) {
    const uint32_t id = accel_->mac_layers()[m];
    EXPECT_EQ(r->layer_outputs[m].data, ref.nodes[id]) << "layer " << id;
    EXPECT_EQ(r->layer_outputs[m].frac, model_.activation_frac(id));
    EXPECT_EQ(r->layer_outputs[m].batch, 4);
  }
  EXPECT_EQ(r->stats.total_flips, 0u);
  // Without keep_layer_outputs only the logits come back.
  auto lean = accel_->Infer(Batch(0, 4), FaultConfig{0.0}, TmrConfig{}, 1, false);
  ASSERT_TRUE(lean.ok());
  EXPECT_TRUE(lean->layer_outputs.empty());
  EXPECT_EQ(lean->logits.data, r->logits.data);
}

// A device hands its working buffers from one model to the next (deployModel): results must
// not depend on whose buffers ran them, and the giver still works without them.
TEST_F(AcceleratorTest, AdoptedBuffersChangeNoResult) {
  FaultConfig faults;
  faults.ber = 1e-3;
  auto fresh = Accelerator::Create(model_, AcceleratorConfig{}).value();
  auto expected = fresh->Infer(Batch(0, 4), faults, TmrConfig{}, 7, true);
  ASSERT_TRUE(expected.ok()) << expected.status().ToString();
  // The buffers come from a model of another graph, warmed by a run with TMR and faults.
  const pb::Graph other_graph = testing::SmallGraphs().back();
  auto other =
      Accelerator::Create(MakeRandomQuantizedModel(other_graph, 4).value(), AcceleratorConfig{})
          .value();
  std::vector<uint8_t> other_pixels =
      testing::RandomPixels(static_cast<size_t>(NumElements(other_graph.input_shape()) * 3), 2);
  ImageBatch warm;
  warm.pixels = other_pixels.data();
  warm.batch = 3;
  warm.sample_ids = {0, 1, 2};
  TmrConfig lw;
  lw.mode = TmrMode::kLayerWise;
  ASSERT_TRUE(other->Infer(warm, faults, lw, 3, true).ok());
  auto next = Accelerator::Create(model_, AcceleratorConfig{}).value();
  next->AdoptBuffers(*other);
  auto got = next->Infer(Batch(0, 4), faults, TmrConfig{}, 7, true);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->logits.data, expected->logits.data);
  ASSERT_EQ(got->layer_outputs.size(), expected->layer_outputs.size());
  for (size_t m = 0; m < got->layer_outputs.size(); ++m) {
    EXPECT_EQ(got->layer_outputs[m].data, expected->layer_outputs[m].data) << "layer " << m;
  }
  EXPECT_EQ(got->stats.total_flips, expected->stats.total_flips);
  auto giver = other->Infer(warm, faults, lw, 3, false);
  EXPECT_TRUE(giver.ok()) << giver.status().ToString();
}

TEST_F(AcceleratorTest, MacLayersAreTheGraphsInOrder) {
  EXPECT_EQ(accel_->mac_layers(), MacLayerIds(graph_));
  EXPECT_EQ(accel_->model().graph().nodes_size(), graph_.nodes_size());
}

TEST_F(AcceleratorTest, RejectsBadCalls) {
  ImageBatch empty;
  EXPECT_FALSE(accel_->Infer(empty, FaultConfig{}, TmrConfig{}, 0, false).ok());
  ImageBatch ids = Batch(0, 2);
  ids.sample_ids.push_back(9);
  auto r = accel_->Infer(ids, FaultConfig{}, TmrConfig{}, 0, false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("sample ids"), std::string::npos);
  FaultConfig bad;
  bad.ber = 1.5;
  r = accel_->Infer(Batch(0, 1), bad, TmrConfig{}, 0, false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("ber"), std::string::npos);
  TmrConfig tmr;
  tmr.mode = TmrMode::kPartial;
  tmr.protected_layers = {0};  // the input node
  r = accel_->Infer(Batch(0, 1), FaultConfig{}, tmr, 0, false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("protected layer 0"), std::string::npos);
  AcceleratorConfig config;
  config.rows = 0;
  EXPECT_FALSE(Accelerator::Create(model_, config).ok());
}

TEST_F(AcceleratorTest, ImagesDoNotInfluenceEachOther) {
  auto all = accel_->Infer(Batch(0, 4), FaultConfig{0.0}, TmrConfig{}, 1, false);
  auto one = accel_->Infer(Batch(2, 1), FaultConfig{0.0}, TmrConfig{}, 1, false);
  ASSERT_TRUE(all.ok() && one.ok());
  const size_t classes = graph_.num_classes();
  EXPECT_EQ(one->logits.data, std::vector<int8_t>(all->logits.data.begin() + 2 * classes,
                                                  all->logits.data.begin() + 3 * classes));
}

TEST_F(AcceleratorTest, StatsCoverEveryMacLayer) {
  auto r = accel_->Infer(Batch(0, 2), FaultConfig{0.0}, TmrConfig{}, 1, false);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->stats.faults.size(), accel_->mac_layers().size());
  ASSERT_EQ(r->stats.cycles.size(), accel_->mac_layers().size());
  int64_t total = 0;
  for (size_t m = 0; m < r->stats.cycles.size(); ++m) {
    const LayerCycles& c = r->stats.cycles[m];
    EXPECT_EQ(c.node_id, accel_->mac_layers()[m]);
    EXPECT_EQ(r->stats.faults[m].node_id, accel_->mac_layers()[m]);
    EXPECT_EQ(c.executions, 1);
    EXPECT_GT(c.compute_cycles, 0);
    const GemmShape g = MacGemmShape(accel_->model().graph(),
                                     accel_->model().graph().nodes(static_cast<int>(c.node_id)));
    EXPECT_EQ(c.macs, g.Macs() * 2);
    total += c.compute_cycles + c.stall_cycles;
  }
  EXPECT_EQ(r->stats.total_cycles, total);
}

}  // namespace
}  // namespace r2f::accel
