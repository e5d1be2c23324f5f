// The analytic cycle model against values computed by hand from docs/cycle_model.md.
#include <gtest/gtest.h>

#include "accel_sim/cycle_model.h"
#include "common/ir/graph_builder.h"
#include "tests/support/test_util.h"

namespace r2f::accel {
namespace {

GemmShape Gemm(int64_t m, int64_t k, int64_t n, int64_t groups = 1) {
  GemmShape g;
  g.m = m;
  g.k = k;
  g.n = n;
  g.groups = groups;
  return g;
}

TEST(CycleModelTest, OneFullFold) {
  // K = N = 32 on a 32x32 array, M = 10: one fold of 2*32 + 32 + 10 - 2 = 104 cycles.
  const LayerCycleReport r = ModelLayer(AcceleratorConfig{}, Gemm(10, 32, 32), 1, 320, 320);
  EXPECT_EQ(r.folds, 1);
  EXPECT_EQ(r.compute_cycles, 104);
  EXPECT_EQ(r.macs, 10 * 32 * 32);
  EXPECT_DOUBLE_EQ(r.mapping_efficiency, 1.0);
  EXPECT_EQ(r.dram_bytes, 320 + 1024 + 320);
  EXPECT_EQ(r.stall_cycles, 0);  // 1664 bytes at 16 B/cycle = 104 cycles: just hidden
  EXPECT_DOUBLE_EQ(r.utilisation, 10240.0 / (104.0 * 1024.0));
}

TEST(CycleModelTest, PartialFoldsCountFullCost) {
  // K = 33: two row folds (32 + 1 rows), each a full-cost pass: 208 cycles; the PEs in use are
  // 32*32 and 1*32 of 1024, mean (1024 + 32) / 2048.
  LayerCycleReport r = ModelLayer(AcceleratorConfig{}, Gemm(10, 33, 32), 1, 330, 320);
  EXPECT_EQ(r.folds, 2);
  EXPECT_EQ(r.compute_cycles, 208);
  EXPECT_DOUBLE_EQ(r.mapping_efficiency, 1056.0 / 2048.0);
  // N = 70 and K = 64: 2 x 3 folds.
  r = ModelLayer(AcceleratorConfig{}, Gemm(5, 64, 70), 1, 64, 70);
  EXPECT_EQ(r.folds, 6);
  EXPECT_EQ(r.compute_cycles, 6 * (64 + 32 + 5 - 2));
  EXPECT_DOUBLE_EQ(r.mapping_efficiency, (64.0 * 70.0) / (6.0 * 1024.0));
}

TEST(CycleModelTest, GroupsAndBatch) {
  // Depthwise 3x3 over 4 channels, 6x6 outputs, batch 3: 4 groups of one fold with K = 9, N = 1,
  // M = 3 * 36 = 108.
  const LayerCycleReport r = ModelLayer(AcceleratorConfig{}, Gemm(36, 9, 1, 4), 3, 4 * 36, 4 * 36);
  EXPECT_EQ(r.m, 108);
  EXPECT_EQ(r.folds, 4);
  EXPECT_EQ(r.compute_cycles, 4 * (64 + 32 + 108 - 2));
  EXPECT_EQ(r.macs, 108 * 9 * 4);
  EXPECT_DOUBLE_EQ(r.mapping_efficiency, 9.0 / 1024.0);
}

TEST(CycleModelTest, SpillingLayerRereadsTheIfmapAndStalls) {
  AcceleratorConfig config;
  config.buffer_kb = 1;             // 1024 bytes
  config.dram_bytes_per_cycle = 2;  // slow DRAM
  // K = 32, N = 64 (two column folds), M = 8; ifmap 2000 B, filter 2048 B, ofmap 512 B.
  const LayerCycleReport r = ModelLayer(config, Gemm(8, 32, 64), 1, 2000, 512);
  EXPECT_EQ(r.folds, 2);
  EXPECT_EQ(r.compute_cycles, 2 * (64 + 32 + 8 - 2));
  EXPECT_EQ(r.dram_bytes, 2 * 2000 + 2048 + 512);
  EXPECT_EQ(r.stall_cycles, (2 * 2000 + 2048 + 512) / 2 - 2 * 102);
  EXPECT_EQ(r.TotalCycles(), (2 * 2000 + 2048 + 512) / 2);
  // The same layer fits a 1 MB buffer: everything moves once.
  const LayerCycleReport fits = ModelLayer(AcceleratorConfig{}, Gemm(8, 32, 64), 1, 2000, 512);
  EXPECT_EQ(fits.dram_bytes, 2000 + 2048 + 512);
  EXPECT_EQ(fits.stall_cycles, (2000 + 2048 + 512 + 15) / 16 - 204);
}

TEST(CycleModelTest, ArrayShapeFromConfig) {
  AcceleratorConfig config;
  config.rows = 8;
  config.cols = 4;
  const LayerCycleReport r = ModelLayer(config, Gemm(10, 9, 6), 1, 90, 60);
  EXPECT_EQ(r.folds, 2 * 2);
  EXPECT_EQ(r.compute_cycles, 4 * (16 + 4 + 10 - 2));
}

TEST(CycleModelTest, NetworkReportFollowsTheGraph) {
  GraphBuilder b("net", {3, 8, 8}, 5);
  uint32_t x = b.Conv("conv", b.input(), ConvSpec{40, 3, 2, 1, 1, false, true});
  x = b.Flatten("flat", b.GlobalAvgPool("gap", x));
  const pb::Graph g = b.Finish(b.Linear("fc", x, 5)).value();
  const std::vector<LayerCycleReport> layers = ModelNetwork(AcceleratorConfig{}, g, 4);
  ASSERT_EQ(layers.size(), 2u);
  EXPECT_EQ(layers[0].node_id, 1u);
  EXPECT_EQ(layers[0].name, "conv");
  EXPECT_EQ(layers[0].m, 4 * 16);
  EXPECT_EQ(layers[0].k, 27);
  EXPECT_EQ(layers[0].n, 40);
  EXPECT_EQ(layers[0].folds, 2);
  EXPECT_EQ(layers[0].compute_cycles, 2 * (64 + 32 + 64 - 2));
  EXPECT_EQ(layers[1].name, "fc");
  EXPECT_EQ(layers[1].m, 4);
  EXPECT_EQ(layers[1].k, 40);
  EXPECT_EQ(layers[1].compute_cycles, 2 * (64 + 32 + 4 - 2));
}

TEST(CycleModelTest, RunOfSeveralBatchesSumsFullAndPartialBatches) {
  GraphBuilder b("net", {3, 8, 8}, 5);
  uint32_t x = b.Conv("conv", b.input(), ConvSpec{40, 3, 2, 1, 1, false, true});
  x = b.Flatten("flat", b.GlobalAvgPool("gap", x));
  const pb::Graph g = b.Finish(b.Linear("fc", x, 5)).value();
  // 10 images in batches of 4: two batches of 4 and one of 2 (hand-computed per fold cost
  // 2R + C + M - 2 with M = 64, 64, 32 for the conv and 4, 4, 2 for the linear layer).
  const std::vector<LayerCycleReport> run = ModelBatches(AcceleratorConfig{}, g, 10, 4);
  ASSERT_EQ(run.size(), 2u);
  EXPECT_EQ(run[0].name, "conv");
  EXPECT_EQ(run[0].m, 160);
  EXPECT_EQ(run[0].folds, 6);
  EXPECT_EQ(run[0].compute_cycles, 2 * 2 * (64 + 32 + 64 - 2) + 2 * (64 + 32 + 32 - 2));
  EXPECT_EQ(run[0].macs, 160 * 27 * 40);
  EXPECT_DOUBLE_EQ(run[0].utilisation, 160.0 * 27 * 40 / (run[0].TotalCycles() * 1024.0));
  EXPECT_DOUBLE_EQ(run[0].mapping_efficiency,
                   ModelNetwork(AcceleratorConfig{}, g, 4)[0].mapping_efficiency);
  EXPECT_EQ(run[1].compute_cycles, 2 * 2 * (64 + 32 + 4 - 2) + 2 * (64 + 32 + 2 - 2));
  // Whole batches only: exactly that many times one batch.
  const auto one = ModelNetwork(AcceleratorConfig{}, g, 4);
  const auto two = ModelBatches(AcceleratorConfig{}, g, 8, 4);
  EXPECT_EQ(two[1].compute_cycles, 2 * one[1].compute_cycles);
  EXPECT_EQ(two[1].dram_bytes, 2 * one[1].dram_bytes);
  EXPECT_TRUE(ModelBatches(AcceleratorConfig{}, g, 0, 4).empty());
}

TEST(CycleModelTest, CsvReport) {
  testing::TempDir dir;
  LayerCycleReport a = ModelLayer(AcceleratorConfig{}, Gemm(10, 32, 32), 1, 320, 320);
  a.node_id = 3;
  a.name = "layer1.0.conv1";
  LayerCycleReport b = ModelLayer(AcceleratorConfig{}, Gemm(10, 33, 32), 1, 330, 320);
  b.node_id = 4;
  b.name = "odd,name";
  ASSERT_TRUE(WriteCycleReportCsv(dir.File("c.csv"), {a, b}, {1, 3}).ok());
  EXPECT_EQ(testing::ReadFile(dir.File("c.csv")),
            "layer,name,M,K,N,groups,MACs,folds,cycles,stall_cycles,dram_bytes,utilisation_pct,"
            "mapping_efficiency_pct\n"
            "3,layer1.0.conv1,10,32,32,1,10240,1,104,0,1664,9.62,100.00\n"
            "4,\"odd,name\",10,33,32,1,31680,6,624,0,5118,4.96,51.56\n");
  EXPECT_FALSE(WriteCycleReportCsv(dir.File("c.csv"), {a, b}, {1}).ok());
  EXPECT_FALSE(WriteCycleReportCsv(dir.File("c.csv"), {a}, {0}).ok());
  Status st = WriteCycleReportCsv(dir.File("missing/dir/c.csv"), {a});
  EXPECT_EQ(st.code(), Status::Code::kIoError);
}

TEST(CycleModelTest, ConfigValidationAndTime) {
  EXPECT_TRUE(ValidateAcceleratorConfig(AcceleratorConfig{}).ok());
  AcceleratorConfig c;
  c.cols = -1;
  EXPECT_FALSE(ValidateAcceleratorConfig(c).ok());
  c = AcceleratorConfig{};
  c.dram_bytes_per_cycle = 0;
  EXPECT_NE(ValidateAcceleratorConfig(c).message().find("dram_bytes_per_cycle"), std::string::npos);
  c = AcceleratorConfig{};
  c.clock_mhz = 0;
  EXPECT_FALSE(ValidateAcceleratorConfig(c).ok());
  EXPECT_DOUBLE_EQ(CyclesToSeconds(AcceleratorConfig{}, 400000000), 2.0);
}

}  // namespace
}  // namespace r2f::accel
