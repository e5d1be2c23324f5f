// BM_TorchFp32Forward: LibTorch's float forward of the same graph and batch as the device
// benchmarks (the int8 model converted with ConvertInt2Float, i.e. BatchNorm folded), in eval
// mode without autograd, on kThreads threads: the yardstick for the int8 executor's speed.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>

#include "server/model/quantize.h"
#include "tests/bench/bench_model.h"

namespace r2f::bench {
namespace {

struct TorchFixture {
  GraphModule module{nullptr};
  torch::Tensor input;
};

TorchFixture& Torch() {
  static TorchFixture fixture = [] {
    auto converted = ConvertInt2Float(BenchModel());
    if (!converted.ok()) {
      std::fprintf(stderr, "r2f_bench: %s\n", converted.status().ToString().c_str());
      std::exit(2);
    }
    TorchFixture f;
    f.module = converted->module;
    f.module->eval();
    f.input = LutInput(BenchPixels().data(), kBatch, BenchModel());
    return f;
  }();
  return fixture;
}

void BM_TorchFp32Forward(benchmark::State& state) {
  torch::set_num_threads(kThreads);
  torch::NoGradGuard no_grad;
  TorchFixture& f = Torch();
  benchmark::DoNotOptimize(f.module->forward(f.input).data_ptr());  // warm-up
  for (auto _ : state) {
    torch::Tensor logits = f.module->forward(f.input);
    benchmark::DoNotOptimize(logits.data_ptr());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBatch);
}

BENCHMARK(BM_TorchFp32Forward)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace r2f::bench
