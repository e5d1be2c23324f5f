// BM_Gemm/<variant>/M/K/N: one exact int8 GEMM C[N x M] = W[N x K] X[K x M], one thread,
// full-range random int8 (-128 and 127 over-represented), for the layer shapes of the default
// ResNet18 at batch 16. The table "GEMM kernels" of docs/accel_sim.md. Variants:
//   naive       the plain int32 triple loop (compiled with -O3 like the library, baseline ISA)
//   <isa>       PackPanels + Int8Gemm with that kernel (generic, avx2, avx512, avx_vnni,
//               avx512_vnni), weights packed once in its layout: what a tile of the executor
//               does. Skipped with an error if the CPU lacks the ISA.
//   <isa>_only  Int8Gemm alone on panels packed once
//   sgemm       ExactInt8Gemm (float sgemm in chunks of 1024, OpenBLAS)
// Every variant's result is checked against the naive loop once before timing. Not in
// r2f_bench's default run, and best run on its own: the sgemm variant switches OpenBLAS to one
// thread for the whole process (UseSingleThreadedBlas), which LibTorch's forward also uses.
//
//   r2f_bench --benchmark_filter=BM_Gemm/ --benchmark_repetitions=5
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "accel_sim/exact_gemm.h"
#include "accel_sim/int16_gemm.h"

namespace r2f::bench {
namespace {

enum class Variant { kNaive, kInt8, kInt8Only, kSgemm };

std::vector<int8_t> RandomInt8(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int8_t> v(n);
  for (int8_t& x : v) {
    const uint64_t r = rng();
    x = r % 16 == 0 ? int8_t{-128} : r % 16 == 1 ? int8_t{127} : static_cast<int8_t>(r >> 8);
  }
  return v;
}

void Naive(const std::vector<int8_t>& w, const std::vector<int8_t>& x, int m, int k, int n,
           std::vector<int32_t>* c) {
  std::fill(c->begin(), c->end(), 0);
  for (int i = 0; i < n; ++i) {
    for (int t = 0; t < k; ++t) {
      const int32_t wv = w[static_cast<size_t>(i) * k + t];
      const int8_t* xr = x.data() + static_cast<size_t>(t) * m;
      int32_t* cr = c->data() + static_cast<size_t>(i) * m;
      for (int j = 0; j < m; ++j) cr[j] += wv * xr[j];
    }
  }
}

void BM_Gemm(benchmark::State& state, Variant variant, accel::GemmIsa isa) {
  if (!accel::CpuHasGemmIsa(isa)) {
    state.SkipWithError("this CPU does not have the ISA");
    return;
  }
  const int m = static_cast<int>(state.range(0));
  const int k = static_cast<int>(state.range(1));
  const int n = static_cast<int>(state.range(2));
  const std::vector<int8_t> w = RandomInt8(static_cast<size_t>(n) * k, 1);
  const std::vector<int8_t> x = RandomInt8(static_cast<size_t>(k) * m, 2);
  std::vector<int32_t> want(static_cast<size_t>(n) * m), got;
  Naive(w, x, m, k, n, &want);

  const accel::GemmLayout layout = accel::GemmIsaLayout(isa);
  const accel::PackedWeights packed = accel::PackWeights(w.data(), n, k, layout);
  const int ld = (m + accel::kPanelCols - 1) / accel::kPanelCols * accel::kPanelCols;
  // 64-byte aligned, as the executor's tiles.
  std::vector<uint8_t> buffer(static_cast<size_t>(accel::PanelBytes(layout, k, m)) + 64);
  uint8_t* panels = buffer.data() + (64 - reinterpret_cast<uintptr_t>(buffer.data()) % 64) % 64;
  std::vector<int32_t> c(static_cast<size_t>(packed.row_blocks) * accel::kRowBlock * ld);
  const std::vector<float> wf(w.begin(), w.end()), xf(x.begin(), x.end());
  std::vector<float> scratch(static_cast<size_t>(n) * m);
  auto run = [&] {
    switch (variant) {
      case Variant::kNaive:
        Naive(w, x, m, k, n, &c);
        break;
      case Variant::kInt8:
        accel::PackPanels(layout, x.data(), k, m, m, panels);
        accel::Int8Gemm(packed, panels, m, c.data(), ld, isa);
        break;
      case Variant::kInt8Only:
        accel::Int8Gemm(packed, panels, m, c.data(), ld, isa);
        break;
      case Variant::kSgemm:
        accel::ExactInt8Gemm(n, m, k, wf.data(), k, xf.data(), m, c.data(), m, scratch.data());
        break;
    }
  };
  accel::PackPanels(layout, x.data(), k, m, m, panels);
  run();
  const int ldc = variant == Variant::kInt8 || variant == Variant::kInt8Only ? ld : m;
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < m; ++j) {
      if (c[static_cast<size_t>(i) * ldc + j] != want[static_cast<size_t>(i) * m + j]) {
        state.SkipWithError("result differs from the naive int32 loop");
        return;
      }
    }
  }
  for (auto _ : state) {
    run();
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  state.counters["MAC/s"] = benchmark::Counter(static_cast<double>(m) * k * n,
                                               benchmark::Counter::kIsIterationInvariantRate);
}

// M x K x N of ResNet18 (width 0.25) layers at batch 16: layer1 conv, layer2, layer3, layer4.
void Shapes(benchmark::internal::Benchmark* b) {
  b->Args({12544, 144, 16})->Args({3136, 288, 32})->Args({784, 576, 64})->Args({256, 1152, 128});
  b->Unit(benchmark::kMillisecond);
}

using accel::GemmIsa;
BENCHMARK_CAPTURE(BM_Gemm, naive, Variant::kNaive, GemmIsa::kGeneric)->Apply(Shapes);
BENCHMARK_CAPTURE(BM_Gemm, generic, Variant::kInt8, GemmIsa::kGeneric)->Apply(Shapes);
BENCHMARK_CAPTURE(BM_Gemm, avx2, Variant::kInt8, GemmIsa::kAvx2)->Apply(Shapes);
BENCHMARK_CAPTURE(BM_Gemm, avx2_only, Variant::kInt8Only, GemmIsa::kAvx2)->Apply(Shapes);
BENCHMARK_CAPTURE(BM_Gemm, avx512, Variant::kInt8, GemmIsa::kAvx512)->Apply(Shapes);
BENCHMARK_CAPTURE(BM_Gemm, avx512_only, Variant::kInt8Only, GemmIsa::kAvx512)->Apply(Shapes);
BENCHMARK_CAPTURE(BM_Gemm, avx_vnni, Variant::kInt8, GemmIsa::kAvxVnni)->Apply(Shapes);
BENCHMARK_CAPTURE(BM_Gemm, avx_vnni_only, Variant::kInt8Only, GemmIsa::kAvxVnni)->Apply(Shapes);
BENCHMARK_CAPTURE(BM_Gemm, avx512_vnni, Variant::kInt8, GemmIsa::kAvx512Vnni)->Apply(Shapes);
BENCHMARK_CAPTURE(BM_Gemm, avx512_vnni_only, Variant::kInt8Only, GemmIsa::kAvx512Vnni)
    ->Apply(Shapes);
BENCHMARK_CAPTURE(BM_Gemm, sgemm, Variant::kSgemm, GemmIsa::kGeneric)->Apply(Shapes);

}  // namespace
}  // namespace r2f::bench
