// The element-wise operators: hand-computed cases of docs/quantization.md, then random graphs of
// every op against the naive reference executor.
#include <gtest/gtest.h>

#include <vector>

#include "accel_sim/elementwise_ops.h"
#include "tests/accel_sim/accel_models.h"
#include "tests/accel_sim/accel_reference.h"

namespace r2f::accel {
namespace {

NodeInfo Node(uint32_t id, pb::OpType op, std::vector<uint32_t> dims, int frac,
              std::vector<uint32_t> inputs = {}) {
  NodeInfo n;
  n.id = id;
  n.op = op;
  n.dims = std::move(dims);
  n.elements = 1;
  for (uint32_t d : n.dims) n.elements *= d;
  n.frac = frac;
  n.inputs = std::move(inputs);
  return n;
}

std::vector<int8_t> RunOp(const std::vector<NodeInfo>& nodes, const NodeInfo& node,
                          const std::vector<std::vector<int8_t>>& inputs, int batch = 1) {
  std::vector<const int8_t*> ptrs;
  for (const auto& v : inputs) ptrs.push_back(v.data());
  std::vector<int8_t> out(static_cast<size_t>(node.elements * batch), 99);
  RunElementwiseNode(nodes, node, ptrs, batch, out.data());
  return out;
}

TEST(ElementwiseOpsTest, AddAlignsFracsRoundsHalfUpAndSaturates) {
  // f_a = 3, f_b = 1, f_out = 2: m = 3, S = a + 4b, y = floor(S/2 + 1/2).
  std::vector<NodeInfo> nodes = {Node(0, pb::OP_INPUT, {6}, 3), Node(1, pb::OP_INPUT, {6}, 1)};
  NodeInfo add = Node(2, pb::OP_ADD, {6}, 2, {0, 1});
  const std::vector<int8_t> a = {5, -128, 127, 1, -1, 3};
  const std::vector<int8_t> b = {-3, -128, 127, 0, 0, -1};
  // S = -7, -640, 635, 1, -1, -1  ->  -3, -128 (sat), 127 (sat), 1, 0, 0
  EXPECT_EQ(RunOp(nodes, add, {a, b}), (std::vector<int8_t>{-3, -128, 127, 1, 0, 0}));
  add.relu = true;
  EXPECT_EQ(RunOp(nodes, add, {a, b}), (std::vector<int8_t>{0, 0, 127, 1, 0, 0}));
  // f_out = m: no rounding, only saturation.
  add.relu = false;
  add.frac = 3;
  EXPECT_EQ(RunOp(nodes, add, {a, b}), (std::vector<int8_t>{-7, -128, 127, 1, -1, -1}));
  // f_out = 5 > m: a left shift by 2, S * 4.
  add.frac = 5;
  EXPECT_EQ(RunOp(nodes, add, {a, b}), (std::vector<int8_t>{-28, -128, 127, 4, -4, -4}));
}

TEST(ElementwiseOpsTest, MaxPoolPaddingNeverWins) {
  // 1x3x3 of negative values, k3 s2 p1 -> 2x2; a zero pad would win every window.
  std::vector<NodeInfo> nodes = {Node(0, pb::OP_INPUT, {1, 3, 3}, 0)};
  NodeInfo pool = Node(1, pb::OP_MAXPOOL, {1, 2, 2}, 0, {0});
  pool.pool_kernel = 3;
  pool.pool_stride = 2;
  pool.pool_pad = 1;
  const std::vector<int8_t> x = {-100, -90,  -80,  //
                                 -70,  -128, -60,  //
                                 -50,  -40,  -128};
  // windows: rows/cols {0,1}x{0,1}, {0,1}x{1,2}, {1,2}x{0,1}, {1,2}x{1,2}
  EXPECT_EQ(RunOp(nodes, pool, {x}), (std::vector<int8_t>{-70, -60, -40, -40}));
}

TEST(ElementwiseOpsTest, AveragePoolsRoundHalfUp) {
  std::vector<NodeInfo> nodes = {Node(0, pb::OP_INPUT, {1, 2, 10}, 0)};
  NodeInfo pool = Node(1, pb::OP_AVGPOOL, {1, 1, 5}, 0, {0});
  pool.pool_kernel = 2;
  pool.pool_stride = 2;
  // 2x2 windows with sums 3, -2, -3, 2, 508: /4 -> 0.75, -0.5, -0.75, 0.5, 127
  const std::vector<int8_t> x = {1, 2, -1, -1, -3, 0, 2, 0, 127, 127,  //
                                 0, 0, 0,  0,  0,  0, 0, 0, 127, 127};
  EXPECT_EQ(RunOp(nodes, pool, {x}), (std::vector<int8_t>{1, 0, -1, 1, 127}));

  std::vector<NodeInfo> gnodes = {Node(0, pb::OP_INPUT, {3, 1, 3}, 0)};
  NodeInfo gap = Node(1, pb::OP_GLOBAL_AVGPOOL, {3, 1, 1}, 0, {0});
  // sums 2, -3, 1 over 3 values -> 0.67, -1, 0.33
  EXPECT_EQ(RunOp(gnodes, gap, {{1, 1, 0, -1, -1, -1, 1, 0, 0}}), (std::vector<int8_t>{1, -1, 0}));
}

TEST(ElementwiseOpsTest, ConcatRequantisesToTheSmallestFrac) {
  std::vector<NodeInfo> nodes = {Node(0, pb::OP_INPUT, {2, 1, 2}, 4),
                                 Node(1, pb::OP_INPUT, {1, 1, 2}, 2)};
  NodeInfo cat = Node(2, pb::OP_CONCAT, {3, 1, 2}, 2, {0, 1});
  // input 0 shifts right by 2: 6 -> 1.5 -> 2, -6 -> -1.5 -> -1, -128 -> -32, 127 -> 31.75 -> 32
  EXPECT_EQ(RunOp(nodes, cat, {{6, -6, -128, 127}, {-128, 127}}),
            (std::vector<int8_t>{2, -1, -32, 32, -128, 127}));
  // Two images: each image's channels are concatenated separately.
  EXPECT_EQ(RunOp(nodes, cat, {{4, 4, 4, 4, 8, 8, 8, 8}, {1, 2, 3, 4}}, 2),
            (std::vector<int8_t>{1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 4}));
}

TEST(ElementwiseOpsTest, ChannelShuffleIsTorchsViewTransposeReshape) {
  // C = 6, g = 2: view [2][3] -> transpose [3][2]: output channels 0,3,1,4,2,5 of the input.
  std::vector<NodeInfo> nodes = {Node(0, pb::OP_INPUT, {6, 1, 2}, 0)};
  NodeInfo shuffle = Node(1, pb::OP_CHANNEL_SHUFFLE, {6, 1, 2}, 0, {0});
  shuffle.shuffle_groups = 2;
  const std::vector<int8_t> x = {0, 1, 10, 11, 20, 21, 30, 31, 40, 41, 50, 51};
  EXPECT_EQ(RunOp(nodes, shuffle, {x}),
            (std::vector<int8_t>{0, 1, 30, 31, 10, 11, 40, 41, 20, 21, 50, 51}));
  // g = 3: view [3][2] -> transpose [2][3]: channels 0,2,4,1,3,5.
  shuffle.shuffle_groups = 3;
  EXPECT_EQ(RunOp(nodes, shuffle, {x}),
            (std::vector<int8_t>{0, 1, 20, 21, 40, 41, 10, 11, 30, 31, 50, 51}));
}

TEST(ElementwiseOpsTest, SliceAndFlattenCopy) {
  std::vector<NodeInfo> nodes = {Node(0, pb::OP_INPUT, {4, 1, 2}, 3)};
  NodeInfo slice = Node(1, pb::OP_SLICE, {2, 1, 2}, 3, {0});
  slice.slice_begin = 1;
  slice.slice_end = 3;
  const std::vector<int8_t> x = {1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 14, 15, 16, 17, 18};
  EXPECT_EQ(RunOp(nodes, slice, {x}, 2), (std::vector<int8_t>{3, 4, 5, 6, 13, 14, 15, 16}));
  NodeInfo flat = Node(2, pb::OP_FLATTEN, {8}, 3, {0});
  EXPECT_EQ(RunOp(nodes, flat, {x}, 2), x);
}

TEST(ElementwiseOpsTest, InputGoesThroughTheLookupTable) {
  std::vector<int8_t> lut(512);
  for (int i = 0; i < 512; ++i) lut[i] = static_cast<int8_t>(i < 256 ? 255 - i - 128 : i % 7);
  NodeInfo input = Node(0, pb::OP_INPUT, {2, 1, 3}, 5);
  const std::vector<uint8_t> px = {0, 255, 128, 0, 7, 255};
  std::vector<int8_t> out(6);
  QuantizeInput(lut, input, 1, px.data(), out.data());
  EXPECT_EQ(out, (std::vector<int8_t>{127, -128, -1, lut[256], lut[263], lut[511]}));
}

// Whole small graphs with every op, random parameters and fracs, against the reference.
TEST(ElementwiseOpsTest, RandomGraphsMatchReference) {
  int graph_index = 0;
  for (const pb::Graph& graph : testing::SmallGraphs()) {
    for (uint64_t seed = 1; seed <= 6; ++seed) {
      SCOPED_TRACE(graph.name() + " seed " + std::to_string(seed));
      const pb::QuantizedModel model =
          MakeRandomQuantizedModel(graph, seed * 31 + graph_index).value();
      auto compiled = testing::Compile(model);
      ASSERT_NE(compiled, nullptr);
      const int batch = 3;
      const std::vector<uint8_t> px =
          testing::RandomPixels(static_cast<size_t>(compiled->nodes()[0].elements * batch), seed);
      const auto fast = testing::FastExecute(*compiled, px.data(), batch);
      const testing::RefRun ref = testing::RefExecute(model, px.data(), batch);
      ASSERT_EQ(fast.size(), ref.nodes.size());
      for (size_t i = 0; i < fast.size(); ++i) {
        ASSERT_EQ(fast[i], ref.nodes[i]) << "node " << i << " '" << graph.nodes(i).name() << "'";
      }
    }
    ++graph_index;
  }
}

}  // namespace
}  // namespace r2f::accel
