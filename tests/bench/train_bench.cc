// The server's training step against LibTorch's plain one, same network (bench_model.h, the
// int8 model converted with ConvertInt2Float: BatchNorm folded), batch, optimiser and threads:
//
//   BM_TorchFp32TrainStep  forward in train mode without fake quantisation, cross entropy,
//                          backward, SGD step: what the step would cost without the hardware
//   BM_HilTrainStep        HilTrainer::Step: the straight-through fake-quant forward with every
//                          MAC layer's value taken from the device, the same loss, backward, SGD
//
// The device's layer outputs come from one clean inference of the simulator, done once: their
// values do not change the work of the step.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <memory>
#include <string>

#include "accel_sim/accelerator.h"
#include "server/model/hil_trainer.h"
#include "server/model/quantize.h"
#include "tests/bench/bench_model.h"

namespace r2f::bench {
namespace {

// Labels 0..9 in turn: their values do not change the work either.
std::string Labels() {
  std::string labels(kBatch, '\0');
  for (int i = 0; i < kBatch; ++i) labels[i] = static_cast<char>(i % 10);
  return labels;
}

void BM_TorchFp32TrainStep(benchmark::State& state) {
  torch::set_num_threads(kThreads);
  FloatModel fm = OrDie(ConvertInt2Float(BenchModel()));
  fm.module->train();
  const HilSettings s;
  torch::optim::SGD sgd(
      fm.module->parameters(),
      torch::optim::SGDOptions(s.lr).momentum(s.momentum).weight_decay(s.weight_decay));
  const torch::Tensor x = LutInput(BenchPixels().data(), kBatch, BenchModel());
  std::vector<int64_t> y;
  for (char c : Labels()) y.push_back(c);
  const torch::Tensor target = torch::tensor(y, torch::kInt64);
  for (auto _ : state) {
    sgd.zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(fm.module->forward(x), target);
    loss.backward();
    sgd.step();
    benchmark::DoNotOptimize(loss.item<double>());  // as HilTrainer::Step reads its loss
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBatch);
}

void BM_HilTrainStep(benchmark::State& state) {
  torch::set_num_threads(kThreads);
  std::unique_ptr<accel::Accelerator> device =
      OrDie(accel::Accelerator::Create(BenchModel(), accel::AcceleratorConfig{}));
  accel::ImageBatch images;
  images.pixels = BenchPixels().data();
  images.batch = kBatch;
  for (int b = 0; b < kBatch; ++b) images.sample_ids.push_back(static_cast<uint64_t>(b));
  const accel::InferenceResult run = OrDie(
      device->Infer(images, accel::FaultConfig{}, accel::TmrConfig{}, /*execution_tag=*/0, true));
  std::unique_ptr<HilTrainer> trainer = OrDie(HilTrainer::Create(BenchModel(), HilSettings{}));
  const std::string pixels(BenchPixels().begin(), BenchPixels().end());
  const std::string labels = Labels();
  for (auto _ : state) {
    Result<HilStepResult> r = trainer->Step(pixels, labels, run.layer_outputs);
    if (!r.ok()) state.SkipWithError(r.status().ToString().c_str());
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBatch);
}

BENCHMARK(BM_TorchFp32TrainStep)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_HilTrainStep)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace r2f::bench
