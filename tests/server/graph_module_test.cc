// The LibTorch executor against the graph IR: shapes, parameters, BN folding, fixed point.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/ir/graph.h"
#include "common/ir/model_zoo.h"
#include "server/model/graph_module.h"
#include "server/model/quantize.h"

namespace r2f {
namespace {

pb::Graph Network(const std::string& name) {
  auto spec = DefaultNetworkSpec(name);
  EXPECT_TRUE(spec.ok());
  auto graph = BuildNetwork(*spec);
  EXPECT_TRUE(graph.ok()) << graph.status().ToString();
  return *graph;
}

// Gives every BatchNorm non-trivial statistics so that folding has something to fold.
void RandomiseBatchNorm(GraphModule& module) {
  torch::NoGradGuard no_grad;
  for (auto& buffer : module->named_buffers()) {
    if (buffer.key().find("running_mean") != std::string::npos) buffer.value().normal_(0, 0.2);
    if (buffer.key().find("running_var") != std::string::npos) buffer.value().uniform_(0.5, 2.0);
  }
  for (auto& p : module->named_parameters()) {
    if (p.key().rfind("bn", 0) == 0 && p.key().find("weight") != std::string::npos)
      p.value().uniform_(0.5, 1.5);
    if (p.key().rfind("bn", 0) == 0 && p.key().find("bias") != std::string::npos)
      p.value().normal_(0, 0.1);
  }
}

class ZooTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ZooTest, ModuleOutputsHaveTheGraphShapes) {
  pb::Graph graph = Network(GetParam());
  GraphModule module(graph);
  module->eval();
  torch::NoGradGuard no_grad;
  const int batch = 2;
  torch::Tensor x = torch::randn({batch, graph.input_shape().dims(0), graph.input_shape().dims(1),
                                  graph.input_shape().dims(2)});
  ForwardOptions opt;
  opt.keep_all = true;
  std::vector<torch::Tensor> outs = module->Run(x, opt);
  ASSERT_EQ(outs.size(), static_cast<size_t>(graph.nodes_size()));
  for (const pb::Node& node : graph.nodes()) {
    std::vector<int64_t> expected{batch};
    for (uint32_t d : node.output_shape().dims()) expected.push_back(d);
    EXPECT_EQ(outs[node.id()].sizes().vec(), expected)
        << "node " << node.id() << " " << node.name();
  }
  EXPECT_EQ(module->forward(x).sizes().vec(), (std::vector<int64_t>{batch, 10}));
}

TEST_P(ZooTest, ParametersBelongToMacLayersByIdAndMatchParamCount) {
  pb::Graph graph = Network(GetParam());
  GraphModule module(graph);
  module->FoldBatchNorm();  // every MAC layer now has weight and bias
  int64_t total = 0;
  for (const pb::Node& node : graph.nodes()) {
    if (!IsMacLayer(node)) continue;
    GemmShape g = MacGemmShape(graph, node);
    EXPECT_EQ(module->weight(node.id()).numel(), g.k * g.n * g.groups) << node.name();
    EXPECT_EQ(module->bias(node.id()).numel(), g.n * g.groups) << node.name();
    total += module->weight(node.id()).numel() + module->bias(node.id()).numel();
  }
  int64_t registered = 0;
  for (const auto& p : module->parameters()) registered += p.numel();
  EXPECT_EQ(total, registered);
  EXPECT_EQ(total, ComputeStats(graph).params);
}

TEST_P(ZooTest, FoldingBatchNormPreservesFloatOutputs) {
  torch::manual_seed(7);
  pb::Graph graph = Network(GetParam());
  GraphModule module(graph);
  RandomiseBatchNorm(module);
  module->eval();
  torch::NoGradGuard no_grad;
  torch::Tensor x = torch::randn(
      {4, graph.input_shape().dims(0), graph.input_shape().dims(1), graph.input_shape().dims(2)});
  torch::Tensor before = module->forward(x).clone();
  module->FoldBatchNorm();
  for (const pb::Node& node : module->graph().nodes()) {
    if (node.op() == pb::OP_CONV) {
      EXPECT_FALSE(node.conv().batch_norm());
    }
  }
  torch::Tensor after = module->forward(x);
  double rel = ((after - before).norm() / before.norm()).item<double>();
  EXPECT_LE(rel, 1e-4) << "relative error of folded outputs";
}

INSTANTIATE_TEST_SUITE_P(AllNetworks, ZooTest,
                         ::testing::Values("resnet18", "resnet50", "mobilenetv2", "shufflenetv2",
                                           "squeezenet"));

TEST(FixedPoint, FakeQuantizeRoundsHalfUpAndSaturates) {
  torch::Tensor z =
      torch::tensor({0.0, 0.25, 0.26, -0.25, -0.26, 10.0, -10.0, 3.96875, -4.0}, torch::kDouble);
  // frac 1: grid 0.5, range [-64, 63.5]; frac 5: grid 1/32, range [-4, 3.96875]
  torch::Tensor q1 = FakeQuantize(z, 1);
  std::vector<double> expect1{0.0, 0.5, 0.5, 0.0, -0.5, 10.0, -10.0, 4.0, -4.0};
  for (int i = 0; i < 9; ++i) EXPECT_DOUBLE_EQ(q1[i].item<double>(), expect1[i]) << i;
  torch::Tensor q5 = FakeQuantize(z, 5);
  EXPECT_DOUBLE_EQ(q5[5].item<double>(), 127.0 / 32);   // saturates high
  EXPECT_DOUBLE_EQ(q5[6].item<double>(), -128.0 / 32);  // saturates low
  EXPECT_DOUBLE_EQ(q5[7].item<double>(), 3.96875);      // exactly representable
}

TEST(FixedPoint, FakeQuantizeGradientIsClippedStraightThrough) {
  torch::Tensor z = torch::tensor({0.1, 100.0, -100.0}, torch::requires_grad());
  FakeQuantize(z, 2).sum().backward();
  EXPECT_FLOAT_EQ(z.grad()[0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(z.grad()[1].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(z.grad()[2].item<float>(), 0.0f);
}

TEST(FixedPoint, WeightsRoundTripThroughInt8PerChannel) {
  torch::Tensor w = torch::tensor({{0.5, -0.75, 0.0}, {3.0, -2.0, 1.0}});
  std::vector<int> frac{7, 5};  // channel 0: 0.5*128 = 64; channel 1: 3*32 = 96
  torch::Tensor q = QuantizeWeights(w, frac);
  std::vector<int> expect{64, -96, 0, 96, -64, 32};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(q.view(-1)[i].item<int>(), expect[i]);
  // Saturation: 2.0 * 2^7 = 256 -> 127, -2.0 * 2^7 -> -128
  torch::Tensor big = QuantizeWeights(torch::tensor({{2.0, -2.0, -1.0}}), {7});
  EXPECT_EQ(big[0][0].item<int>(), 127);
  EXPECT_EQ(big[0][1].item<int>(), -128);
  EXPECT_EQ(big[0][2].item<int>(), -128);  // -1.0 * 128 is exactly -128
}

TEST(FixedPoint, BiasIsQuantizedAtTheAccumulatorScale) {
  torch::Tensor b = torch::tensor({0.25, -1.0});
  torch::Tensor q = QuantizeBias(b, {3, 4}, 2);  // scales 2^5 and 2^6
  EXPECT_EQ(q[0].item<int>(), 8);
  EXPECT_EQ(q[1].item<int>(), -64);
}

}  // namespace
}  // namespace r2f
