// The deployed int8 model gives bit-identical outputs on the device (accel_sim) and in the
// server's fake-quant forward (LibTorch, float64), for all five networks, after a short real
// pre-training and calibration on Fashion-MNIST. Also: the pretrain cache is reused.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "accel_sim/accelerator.h"
#include "common/data/dataset.h"
#include "common/ir/graph.h"
#include "server/model/pretrain.h"
#include "server/model/quantize.h"
#include "tests/support/test_util.h"

namespace r2f {
namespace {

constexpr int kImages = 128;

PretrainConfig QuickConfig(const std::string& network, const std::string& out_dir) {
  PretrainConfig cfg;
  cfg.network = *DefaultNetworkSpec(network);
  cfg.train_data.limit = 4096;
  cfg.test_data.split = "test";
  cfg.test_data.limit = kImages;
  cfg.train.epochs = 1;
  cfg.train.batch_size = 32;
  cfg.train.max_steps = 25;
  cfg.calibration_images = 512;
  cfg.threads = 2;
  cfg.output_dir = out_dir;
  return cfg;
}

bool HaveFashionMnist() {
  return std::filesystem::exists("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
}

pb::QuantizedModel ReadModel(const std::string& path) {
  pb::QuantizedModel model;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(model.ParseFromIstream(&in)) << path;
  return model;
}

class ExactnessTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ExactnessTest, DeviceInt8EqualsServerFakeQuantOnEveryLayer) {
  if (!HaveFashionMnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  testing::TempDir dir;
  PretrainConfig cfg = QuickConfig(GetParam(), dir.path());
  auto result = RunPretrain(cfg);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  pb::QuantizedModel model = ReadModel(result->model_path);

  auto test = LoadDataset(cfg.test_data);
  ASSERT_TRUE(test.ok()) << test.status().ToString();
  ASSERT_EQ(test->size(), static_cast<size_t>(kImages));

  // Device: clean int8 execution with every MAC layer's output kept.
  auto device = accel::Accelerator::Create(model, accel::AcceleratorConfig{});
  ASSERT_TRUE(device.ok()) << device.status().ToString();
  accel::ImageBatch images{test->images.data(), kImages, {}};
  for (int i = 0; i < kImages; ++i) images.sample_ids.push_back(i);
  auto run = (*device)->Infer(images, accel::FaultConfig{}, accel::TmrConfig{}, 0, true);
  ASSERT_TRUE(run.ok()) << run.status().ToString();

  // Server: fake-quant forward in double, all node outputs kept.
  auto fm = ConvertInt2Float(model);
  ASSERT_TRUE(fm.ok()) << fm.status().ToString();
  fm->module->eval();
  fm->module->to(torch::kDouble);
  ForwardOptions opt;
  opt.quant = &fm->format;
  opt.keep_all = true;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> outs =
      fm->module->Run(LutInput(test->images.data(), kImages, model, torch::kDouble), opt);

  const std::vector<uint32_t> macs = MacLayerIds(model.graph());
  ASSERT_EQ(run->layer_outputs.size(), macs.size());
  auto compare = [&](const accel::Int8Tensor& dev, uint32_t node, const std::string& what) {
    torch::Tensor server = (outs[node] * std::ldexp(1.0, model.activation_frac(node)))
                               .reshape({-1})
                               .to(torch::kInt32)
                               .contiguous();
    ASSERT_EQ(dev.frac, model.activation_frac(node)) << what;
    ASSERT_EQ(static_cast<int64_t>(dev.data.size()), server.numel()) << what;
    const int32_t* s = server.data_ptr<int32_t>();
    int64_t mismatches = 0, first = -1;
    for (size_t i = 0; i < dev.data.size(); ++i) {
      if (dev.data[i] != s[i]) {
        if (first < 0) first = static_cast<int64_t>(i);
        ++mismatches;
      }
    }
    EXPECT_EQ(mismatches, 0) << what << ": first mismatch at " << first << " device "
                             << (first >= 0 ? int(dev.data[first]) : 0) << " server "
                             << (first >= 0 ? s[first] : 0);
  };
  for (size_t i = 0; i < macs.size(); ++i) {
    compare(run->layer_outputs[i], macs[i],
            "layer " + std::to_string(macs[i]) + " '" + model.graph().nodes(macs[i]).name() + "'");
  }
  compare(run->logits, model.graph().output(), "logits");
}

TEST(PretrainCache, SecondRunReusesTheCheckpoint) {
  if (!HaveFashionMnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  testing::TempDir dir;
  PretrainConfig cfg = QuickConfig("squeezenet", dir.path());
  auto first = RunPretrain(cfg);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_FALSE(first->reused_checkpoint);
  std::string model_bytes = testing::ReadFile(first->model_path);
  auto second = RunPretrain(cfg);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_TRUE(second->reused_checkpoint);
  EXPECT_EQ(second->run_dir, first->run_dir);
  EXPECT_EQ(testing::ReadFile(second->model_path), model_bytes);
  EXPECT_EQ(second->int8_accuracy.top1_hits(), first->int8_accuracy.top1_hits());

  cfg.train.seed = 2;  // a different config trains anew in another directory
  EXPECT_NE(PretrainRunDir(cfg), first->run_dir);
}

INSTANTIATE_TEST_SUITE_P(AllNetworks, ExactnessTest,
                         ::testing::Values("resnet18", "resnet50", "mobilenetv2", "shufflenetv2",
                                           "squeezenet"));

}  // namespace
}  // namespace r2f
