// r2f_sim, run as a program: its JSON agrees with the library's EvaluateOnDevice for the same
// configuration (so every option is wired through), the cycle report adds up to the reported
// cycles, and bad input fails with a message naming the culprit. Self-contained: a small random
// model and a 40-image IDX data set are written to a temporary directory.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "accel_sim/accelerator.h"
#include "accel_sim/evaluate.h"
#include "accel_sim/random_model.h"
#include "common/data/dataset.h"
#include "common/ir/graph_builder.h"
#include "tests/support/test_util.h"

namespace r2f::accel {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

constexpr int kImages = 40;

pb::Graph TinyGraph() {
  GraphBuilder b("tiny", {1, 28, 28}, 10);
  uint32_t x = b.Conv("conv1", b.input(), ConvSpec{4, 3, 2, 1, 1, false, true});
  x = b.Conv("conv2", x, ConvSpec{8, 3, 2, 1, 1, false, true});
  x = b.Flatten("flat", b.GlobalAvgPool("gap", x));
  return b.Finish(b.Linear("fc", x, 10)).value();
}

std::string BigEndian32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

struct Outcome {
  int exit_code = -1;
  std::string out, err;
};

class SimCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    model_ = new pb::QuantizedModel(MakeRandomQuantizedModel(TinyGraph(), 5).value());
    testing::WriteFile(dir_->File("model.pb"), model_->SerializeAsString());
    // The test split of an IDX data set: raw (uncompressed) images and labels.
    std::mt19937 rng(3);
    std::string images =
        BigEndian32(0x803) + BigEndian32(kImages) + BigEndian32(28) + BigEndian32(28);
    for (int i = 0; i < kImages * 28 * 28; ++i) images += static_cast<char>(rng() % 256);
    std::string labels = BigEndian32(0x801) + BigEndian32(kImages);
    for (int i = 0; i < kImages; ++i) labels += static_cast<char>(rng() % 10);
    testing::WriteFile(dir_->File("t10k-images-idx3-ubyte"), images);
    testing::WriteFile(dir_->File("t10k-labels-idx1-ubyte"), labels);
  }
  static void TearDownTestSuite() {
    delete model_;
    delete dir_;
  }

  // Runs r2f_sim with `args` after --data-dir (the test's data set unless `data` is given)
  // and --model (unless `model` is empty).
  static Outcome Sim(const std::string& args, const std::string& model = "model.pb",
                     const std::string& data = "") {
    const std::string out = dir_->File("stdout"), err = dir_->File("stderr");
    std::string cmd =
        testing::BinDir() + "/r2f_sim --data-dir " + (data.empty() ? dir_->path() : data);
    if (!model.empty()) cmd += " --model " + dir_->File(model);
    cmd += " " + args + " > " + out + " 2> " + err;
    const int status = std::system(cmd.c_str());
    Outcome o;
    o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    o.out = testing::ReadFile(out);
    o.err = testing::ReadFile(err);
    return o;
  }

  static Struct Json(const Outcome& o) {
    Struct s;
    EXPECT_EQ(o.exit_code, 0) << o.err;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(o.out, &s).ok()) << o.out;
    return s;
  }

  // The library's result for the same configuration, on the same data.
  static DeviceEvalResult Library(const DeviceEvalOptions& options) {
    DatasetSpec spec;
    spec.dir = dir_->path();
    spec.split = "test";
    Dataset data = LoadDataset(spec).value();
    auto device = Accelerator::Create(*model_, AcceleratorConfig{}).value();
    return EvaluateOnDevice(*device, data, options).value();
  }

  static double Num(const Struct& s, const std::string& key) {
    return s.fields().at(key).number_value();
  }

  static testing::TempDir* dir_;
  static pb::QuantizedModel* model_;
};

testing::TempDir* SimCliTest::dir_ = nullptr;
pb::QuantizedModel* SimCliTest::model_ = nullptr;

TEST_F(SimCliTest, CleanRunEqualsTheLibrary) {
  const Struct s = Json(Sim("--ber 0 --batch 16 --json"));
  DeviceEvalOptions options;
  options.batch_size = 16;
  options.layer_similarity = true;
  const DeviceEvalResult want = Library(options);
  EXPECT_EQ(Num(s, "images"), kImages);
  EXPECT_EQ(Num(s, "flips"), 0);
  EXPECT_EQ(Num(s, "ber"), 0);
  EXPECT_DOUBLE_EQ(Num(s, "top1"), want.accuracy.Top1());
  EXPECT_DOUBLE_EQ(Num(s, "top5"), want.accuracy.Top5());
  EXPECT_DOUBLE_EQ(Num(s, "top1_ci95"), want.accuracy.Top1Ci95());
  EXPECT_EQ(Num(s, "cycles"), static_cast<double>(want.total_cycles));
  EXPECT_DOUBLE_EQ(Num(s, "seconds"), static_cast<double>(want.total_cycles) / 200e6);
  EXPECT_EQ(s.fields().at("tmr").string_value(), "none");
  const auto& layers = s.fields().at("layers").list_value();
  ASSERT_EQ(layers.values_size(), 3);  // conv1, conv2, fc
  EXPECT_EQ(layers.values(0).struct_value().fields().at("name").string_value(), "conv1");
  for (const Value& layer : layers.values()) {
    EXPECT_EQ(layer.struct_value().fields().at("similarity").number_value(), 1.0);
  }
}

TEST_F(SimCliTest, FaultyRunEqualsTheLibraryForTheSameOptions) {
  // Every fault option changes the result, so agreement means each one is passed through.
  const Struct s = Json(
      Sim("--ber 2e-3 --seed 7 --tag 3 --sites weights,hidden --tmr layer_wise --batch 12 --json"));
  DeviceEvalOptions options;
  options.batch_size = 12;
  options.faults.ber = 2e-3;
  options.faults.seed = 7;
  options.faults.sites = {true, false, true, false};
  options.tmr.mode = TmrMode::kLayerWise;
  options.execution_tag = 3;
  options.layer_similarity = true;
  const DeviceEvalResult want = Library(options);
  ASSERT_GT(want.total_flips, 0u);
  EXPECT_EQ(Num(s, "flips"), static_cast<double>(want.total_flips));
  EXPECT_DOUBLE_EQ(Num(s, "top1"), want.accuracy.Top1());
  EXPECT_EQ(Num(s, "cycles"), static_cast<double>(want.total_cycles));
  const auto& per_site = s.fields().at("flips_per_site").struct_value().fields();
  EXPECT_EQ(per_site.at("inputs").number_value(), 0);
  EXPECT_EQ(per_site.at("outputs").number_value(), 0);
  EXPECT_GT(per_site.at("weights").number_value(), 0);
  const auto& layers = s.fields().at("layers").list_value();
  ASSERT_EQ(layers.values_size(), static_cast<int>(want.layer_similarity.size()));
  for (int l = 0; l < layers.values_size(); ++l) {
    const auto& f = layers.values(l).struct_value().fields();
    EXPECT_DOUBLE_EQ(f.at("similarity").number_value(), want.layer_similarity[l]);
    EXPECT_EQ(f.at("executions").number_value(), 3);
  }
  // Same options, same faults: the run is reproducible.
  const Struct again = Json(
      Sim("--ber 2e-3 --seed 7 --tag 3 --sites weights,hidden --tmr layer_wise --batch 12 --json"));
  EXPECT_EQ(Num(again, "flips"), Num(s, "flips"));
  EXPECT_EQ(Num(again, "top1"), Num(s, "top1"));
}

TEST_F(SimCliTest, CycleReportAddsUpToTheRunWithTmrExecutions) {
  // conv2 (node 2) protected: three executions; 40 images in batches of 16, 16 and 8.
  const Struct s = Json(Sim("--ber 1e-3 --protect 2 --batch 16 --json --no-similarity --report " +
                            dir_->File("cycles.csv")));
  EXPECT_EQ(s.fields().at("tmr").string_value(), "partial");
  EXPECT_TRUE(s.fields()
                  .at("layers")
                  .list_value()
                  .values(0)
                  .struct_value()
                  .fields()
                  .at("similarity")
                  .has_null_value());
  std::istringstream csv(testing::ReadFile(dir_->File("cycles.csv")));
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line.rfind("layer,name,M,K,N,groups,MACs,folds,cycles,stall_cycles", 0), 0u);
  double total = 0;
  int rows = 0;
  while (std::getline(csv, line)) {
    std::vector<std::string> cells;
    std::stringstream cells_in(line);
    for (std::string c; std::getline(cells_in, c, ',');) cells.push_back(c);
    ASSERT_GE(cells.size(), 10u) << line;
    total += std::stod(cells[8]) + std::stod(cells[9]);
    if (cells[1] == "conv2") {  // M = 40 images x 7x7 outputs, K = 4 x 3x3, N = 8
      EXPECT_EQ(cells[2], std::to_string(kImages * 7 * 7));
      EXPECT_EQ(cells[6], std::to_string(3 * kImages * 7 * 7 * 36 * 8)) << "MACs x executions";
    }
    ++rows;
  }
  EXPECT_EQ(rows, 3);
  EXPECT_EQ(total, Num(s, "cycles"));
}

TEST_F(SimCliTest, TextReportNamesLayersAndAccuracy) {
  const Outcome o = Sim("--ber 1e-3 --images 20");
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find("top-1"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("conv2"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("20 images"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("modelled at 200 MHz"), std::string::npos) << o.out;
}

// Each bad input: a non-zero exit and a message on stderr containing `culprit`.
void ExpectFailure(const Outcome& o, const std::string& culprit) {
  EXPECT_NE(o.exit_code, 0) << o.out;
  EXPECT_NE(o.err.find(culprit), std::string::npos) << "stderr: " << o.err;
  EXPECT_TRUE(o.out.empty() || o.out.find("top1") == std::string::npos) << o.out;
}

TEST_F(SimCliTest, BadModelFilesAreNamed) {
  ExpectFailure(Sim("", "missing.pb"), "missing.pb");
  testing::WriteFile(dir_->File("garbage.pb"), std::string(16, '\xff'));
  ExpectFailure(Sim("", "garbage.pb"), "garbage.pb' is not a QuantizedModel");
  testing::WriteFile(dir_->File("empty.pb"), "");
  ExpectFailure(Sim("", "empty.pb"), "empty.pb' is empty");
  pb::QuantizedModel broken = *model_;
  broken.mutable_layers(1)->set_weights("abc");
  testing::WriteFile(dir_->File("broken.pb"), broken.SerializeAsString());
  ExpectFailure(Sim("", "broken.pb"), "layer 2 'conv2'");
  ExpectFailure(Sim("--ber 0", ""), "--model");  // required
}

TEST_F(SimCliTest, BadOptionsAreNamed) {
  ExpectFailure(Sim("--sites weights,foo"), "'foo'");
  ExpectFailure(Sim("--sites weights,weights"), "listed twice");
  ExpectFailure(Sim("--ber 2"), "--ber");
  ExpectFailure(Sim("--ber -1e-3"), "--ber");
  ExpectFailure(Sim("--tmr bogus"), "'bogus'");
  ExpectFailure(Sim("--protect 3"), "protected layer 3 ('gap', OP_GLOBAL_AVGPOOL)");
  ExpectFailure(Sim("--protect 77"), "77 (no such node)");
  ExpectFailure(Sim("--tmr layer_wise --protect 1"), "--protect applies to --tmr partial");
  ExpectFailure(Sim("--batch 0"), "--batch");
  ExpectFailure(Sim("--rows 0"), "rows");
  ExpectFailure(Sim("", "model.pb", "/nonexistent"), "/nonexistent");
}

}  // namespace
}  // namespace r2f::accel
