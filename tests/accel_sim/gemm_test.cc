// The exact GEMM kernels and the clean MAC-layer path against naive int32 loops, on full-range
// int8 data (-128 and 127 over-represented) and awkward shapes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "accel_sim/exact_gemm.h"
#include "accel_sim/int16_gemm.h"
#include "accel_sim/mac_kernels.h"
#include "accel_sim/requantize.h"
#include "accel_sim/scaled_row.h"
#include "accel_sim/tmr_voter.h"
#include "common/base/cpu_features.h"
#include "tests/accel_sim/accel_models.h"
#include "tests/accel_sim/accel_reference.h"

namespace r2f::accel {
namespace {

using testing::ConvGeometry;

std::vector<int32_t> NaiveGemm(const std::vector<int8_t>& w, const std::vector<int8_t>& x, int n,
                               int k, int cols) {
  std::vector<int32_t> c(static_cast<size_t>(n) * cols);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < cols; ++j) {
      int64_t s = 0;
      for (int t = 0; t < k; ++t) s += int64_t{w[i * k + t]} * x[static_cast<size_t>(t) * cols + j];
      c[static_cast<size_t>(i) * cols + j] = static_cast<int32_t>(s);
    }
  }
  return c;
}

std::vector<int8_t> RandomMatrix(size_t n, std::mt19937_64& rng) {
  std::vector<int8_t> v(n);
  for (auto& x : v) x = testing::RandomInt8(rng);
  return v;
}

// Operand contents of CheckInt8Gemm.
enum class Fill {
  kRandom,  // full range, -128 and 127 over-represented
  kAllMin,  // w = x = -128: every product +2^14, the largest pair and quad sums
  kMinMax,  // w = -128, x = 127: every product -16256; x + 128 = 255 in kQuads8
  kMaxMin,  // w = 127, x = -128: x + 128 = 0 in kQuads8, the result is all correction
  kMaxMax,  // w = x = 127: in kQuads8 the sum of (x + 128) * w wraps int32 for k > 66306
};

// Every kernel the CPU has, each on the layout it runs, and the portable kernel on both
// layouts: (layout, kernel) pairs.
std::vector<std::pair<GemmLayout, GemmIsa>> KernelsToTest() {
  std::vector<std::pair<GemmLayout, GemmIsa>> kernels;
  for (GemmIsa isa : AvailableGemmIsas()) kernels.emplace_back(GemmIsaLayout(isa), isa);
  kernels.emplace_back(GemmLayout::kQuads8, GemmIsa::kGeneric);
  kernels.emplace_back(GemmLayout::kPairs16, GemmIsa::kAuto);
  kernels.emplace_back(GemmLayout::kQuads8, GemmIsa::kAuto);
  return kernels;
}

std::string KernelName(GemmLayout layout, GemmIsa isa) {
  return std::string(GemmIsaName(isa)) + "/" + GemmLayoutName(layout);
}

// The kernel's c against the naive int64 sum (which then must fit int32) at every element, and
// zero in the padding rows and columns (c starts as garbage).
void CheckInt8Gemm(int n, int k, int cols, GemmLayout layout, GemmIsa isa, std::mt19937_64& rng,
                   Fill fill = Fill::kRandom) {
  std::vector<int8_t> w = RandomMatrix(static_cast<size_t>(n) * k, rng);
  std::vector<int8_t> x = RandomMatrix(static_cast<size_t>(k) * cols, rng);
  const int8_t wv = fill == Fill::kAllMin || fill == Fill::kMinMax ? -128 : 127;
  const int8_t xv = fill == Fill::kAllMin || fill == Fill::kMaxMin ? -128 : 127;
  if (fill != Fill::kRandom) {
    std::fill(w.begin(), w.end(), wv);
    std::fill(x.begin(), x.end(), xv);
  }
  const PackedWeights packed = PackWeights(w.data(), n, k, layout);
  ASSERT_EQ(packed.layout, layout);
  // Odd start: the kernels must not rely on alignment.
  std::vector<uint8_t> buffer(static_cast<size_t>(PanelBytes(layout, k, cols)) + 1);
  PackPanels(layout, x.data(), k, cols, cols, buffer.data() + 1);
  const int ld = (cols + kPanelCols - 1) / kPanelCols * kPanelCols;
  const int rows = packed.row_blocks * kRowBlock;
  std::vector<int32_t> c(static_cast<size_t>(rows) * ld, 12345);
  Int8Gemm(packed, buffer.data() + 1, cols, c.data(), ld, isa);
  const std::vector<int32_t> want = NaiveGemm(w, x, n, k, cols);
  for (int i = 0; i < rows; ++i) {
    for (int j = 0; j < ld; ++j) {
      const int32_t expected = i < n && j < cols ? want[static_cast<size_t>(i) * cols + j] : 0;
      ASSERT_EQ(c[static_cast<size_t>(i) * ld + j], expected)
          << KernelName(layout, isa) << " n=" << n << " k=" << k << " cols=" << cols << " at (" << i
          << "," << j << ")";
    }
  }
}

TEST(Int8GemmTest, TestsEveryKernelTheCpuHas) {
  // The loops below take their kernels from AvailableGemmIsas(): it must list what the CPU
  // reports (less what R2F_CPU_ISA excludes), or a kernel could go untested on the machines
  // that run it.
  const std::vector<GemmIsa> isas = AvailableGemmIsas();
  auto has = [&](GemmIsa isa) { return std::find(isas.begin(), isas.end(), isa) != isas.end(); };
  EXPECT_TRUE(has(GemmIsa::kGeneric));
#if defined(__x86_64__)
  const bool native = ProcessCpuIsaCap() == CpuIsaCap::kNative;
  const bool avx2_allowed = ProcessCpuIsaCap() != CpuIsaCap::kPortable;
  EXPECT_EQ(has(GemmIsa::kAvx2), __builtin_cpu_supports("avx2") != 0 && avx2_allowed);
  EXPECT_EQ(has(GemmIsa::kAvx512Vnni), __builtin_cpu_supports("avx512vnni") != 0 &&
                                           __builtin_cpu_supports("avx512bw") != 0 && native);
  EXPECT_EQ(has(GemmIsa::kAvxVnni), __builtin_cpu_supports("avxvnni") != 0 && native);
#endif
  EXPECT_TRUE(has(BestGemmIsa()));
  for (GemmIsa isa : isas) std::printf("[ info ] GEMM kernel %s\n", GemmIsaName(isa));
}

TEST(Int8GemmTest, MatchesNaiveOnOddShapes) {
  std::mt19937_64 rng(1);
  for (auto [layout, isa] : KernelsToTest()) {
    for (int k : {1, 2, 3, 4, 5, 7, 8, 9, 1023, 1024, 1025, 2500, 4099}) {
      for (int n : {1, 3, 4, 5, 8, 9, 17}) {
        for (int cols : {1, 15, 16, 17, 33, 50, 64, 130})
          CheckInt8Gemm(n, k, cols, layout, isa, rng);
      }
    }
  }
}

TEST(Int8GemmTest, ExtremeOperandsAreExact) {
  std::mt19937_64 rng(2);
  for (auto [layout, isa] : KernelsToTest()) {
    for (Fill fill : {Fill::kAllMin, Fill::kMinMax, Fill::kMaxMin, Fill::kMaxMax}) {
      for (int k : {1, 3, 1025, 4099}) CheckInt8Gemm(5, k, 33, layout, isa, rng, fill);
    }
  }
}

TEST(Int8GemmTest, LongKIsExact) {
  // k = 70001 (allowed: K <= 2^17): sum (x + 128) * w alone would leave int32 in kQuads8
  // (255 * 127 * k > 2^31) while the true sum fits; the start value acc_init must cancel the
  // offset.
  std::mt19937_64 rng(5);
  for (auto [layout, isa] : KernelsToTest()) {
    for (Fill fill : {Fill::kMaxMax, Fill::kMinMax, Fill::kRandom}) {
      CheckInt8Gemm(4, 70001, 16, layout, isa, rng, fill);
    }
  }
}

TEST(Int8GemmTest, PackedWeightsReadBack) {
  std::mt19937_64 rng(6);
  for (GemmLayout layout : {GemmLayout::kPairs16, GemmLayout::kQuads8}) {
    for (int k : {1, 2, 3, 5, 9}) {
      const int n = 6;
      const std::vector<int8_t> w = RandomMatrix(static_cast<size_t>(n) * k, rng);
      const PackedWeights p = PackWeights(w.data(), n, k, layout);
      for (int i = 0; i < n; ++i) {
        int64_t sum = 0;
        for (int t = 0; t < k; ++t) {
          ASSERT_EQ(p.At(i, t), w[static_cast<size_t>(i) * k + t]) << i << "," << t;
          sum += w[static_cast<size_t>(i) * k + t];
        }
        if (layout == GemmLayout::kQuads8) {
          EXPECT_EQ(p.acc_init[i], -128 * sum);
        }
      }
    }
  }
}

// Set on a packed copy equals packing the changed matrix anew, acc_init included, in both
// layouts, through rows of several row blocks and k not a multiple of the group.
TEST(Int8GemmTest, SetEqualsPackingTheChangedWeights) {
  std::mt19937_64 rng(8);
  for (GemmLayout layout : {GemmLayout::kPairs16, GemmLayout::kQuads8}) {
    for (int k : {1, 3, 7, 36}) {
      const int n = 2 * kRowBlock + 5;
      std::vector<int8_t> w = RandomMatrix(static_cast<size_t>(n) * k, rng);
      PackedWeights patched = PackWeights(w.data(), n, k, layout);
      for (int change = 0; change < 3 * n; ++change) {
        const int i = static_cast<int>(rng() % n), t = static_cast<int>(rng() % k);
        const int8_t v = testing::RandomInt8(rng);
        w[static_cast<size_t>(i) * k + t] = v;
        patched.Set(i, t, v);
      }
      const PackedWeights fresh = PackWeights(w.data(), n, k, layout);
      EXPECT_EQ(patched.data, fresh.data) << "k " << k;
      EXPECT_EQ(patched.acc_init, fresh.acc_init) << "k " << k;
    }
  }
}

TEST(Int8GemmTest, PackPanelsHonoursRowStride) {
  std::mt19937_64 rng(3);
  // 20 columns: one whole panel and a padded one; 150: also two groups of four panels (the
  // AVX-512 packing) and a padded tail.
  for (auto [k, cols] : {std::pair{5, 20}, std::pair{8, 20}, std::pair{8, 150}}) {
    const int ldx = cols + 17;
    std::vector<int8_t> x = RandomMatrix(static_cast<size_t>(k) * ldx, rng);
    for (GemmLayout layout : {GemmLayout::kPairs16, GemmLayout::kQuads8}) {
      std::vector<uint8_t> panels(static_cast<size_t>(PanelBytes(layout, k, cols)));
      PackPanels(layout, x.data(), k, cols, ldx, panels.data());
      const int per = layout == GemmLayout::kPairs16 ? 2 : 4;
      const int groups = (k + per - 1) / per;
      for (int t = 0; t < k; ++t) {
        for (int j = 0; j < (cols + 15) / 16 * 16; ++j) {
          const int8_t v = j < cols ? x[static_cast<size_t>(t) * ldx + j] : 0;
          const size_t lane =
              (static_cast<size_t>(j / kPanelCols) * groups + t / per) * kPanelCols +
              j % kPanelCols;
          if (layout == GemmLayout::kPairs16) {
            int16_t got;
            std::memcpy(&got, panels.data() + lane * 4 + (t % 2) * 2, 2);
            ASSERT_EQ(got, v) << "t=" << t << " j=" << j;
          } else {
            ASSERT_EQ(panels[lane * 4 + t % 4], static_cast<uint8_t>(v + 128))
                << "t=" << t << " j=" << j;
          }
        }
      }
    }
  }
}

TEST(Int8GemmTest, KernelOfAnotherLayoutAborts) {
  // An explicit kernel on weights of another layout is a contract violation: it aborts rather
  // than silently running another kernel than the one asked for.
  const int8_t w[4] = {1, 2, 3, 4};
  const PackedWeights p = PackWeights(w, 1, 4, GemmLayout::kPairs16);
  std::vector<uint8_t> panels(static_cast<size_t>(PanelBytes(p.layout, 4, 1)));
  PackPanels(p.layout, w, 4, 1, 1, panels.data());
  std::vector<int32_t> c(kRowBlock * kPanelCols);
  EXPECT_DEATH(Int8Gemm(p, panels.data(), 1, c.data(), kPanelCols, GemmIsa::kAvx512Vnni),
               "cannot run pairs16");
}

// Exits 0 if every dispatching kernel of a process under R2F_CPU_ISA=avx2 is one an AVX2-only
// machine has, 1 (naming the first that is not) otherwise.
[[noreturn]] void ExitWithTheAvx2CapVerdict() {
  auto fail = [](const std::string& what) {
    std::fprintf(stderr, "under R2F_CPU_ISA=avx2: %s\n", what.c_str());
    std::exit(1);
  };
  const std::string gemm = GemmIsaName(BestGemmIsa());
  if (gemm != "avx2" && gemm != "generic") fail("GEMM kernel " + gemm);
  for (const auto& [name, fn] : RequantizeRowKernels()) {
    if (std::strcmp(name, "avx512") == 0) fail("requantisation kernel avx512");
  }
  for (const auto& [name, fn] : RequantizeVoteKernels()) {
    if (std::strcmp(name, "avx512") == 0) fail("vote kernel avx512");
  }
  for (const auto& [name, fn] : AddScaledRowsKernels()) {
    if (std::strcmp(name, "avx512") == 0) fail("scaled-row kernel avx512");
  }
  std::exit(0);
}

TEST(CpuIsaCapTest, Avx2CapLeavesNoAvx512OrVnniKernel) {
  // In a fresh process (the cap is read once per process): the "threadsafe" style re-runs the
  // test binary for the child, which inherits the variable.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  setenv("R2F_CPU_ISA", "avx2", 1);
  unsetenv("R2F_GEMM_ISA");
  EXPECT_EXIT(ExitWithTheAvx2CapVerdict(), ::testing::ExitedWithCode(0), "");
  unsetenv("R2F_CPU_ISA");
}

TEST(AddScaledRowsTest, EveryKernelMatchesWrappingInt32LoopForEveryTail) {
  // The weight-flip delta rows: every length around the 8- and 16-wide SIMD blocks, one to
  // five terms, the extreme scales (+-255 with x = -128 is the largest product) and
  // accumulators near the int32 edges, where the sum must wrap like the modular arithmetic
  // the epilogue relies on. Rows are read at an odd stride, from an unaligned start.
  std::mt19937_64 rng(17);
  const int32_t scales[] = {255, -255, 1, -1, 0, 128, -128, 77};
  constexpr int64_t kLd = 45;
  std::vector<int8_t> x(5 * kLd + 1);
  for (auto& v : x) v = static_cast<int8_t>(rng() % 4 == 0 ? -128 : rng());
  for (const auto& [name, kernel] : AddScaledRowsKernels()) {
    for (int count = 1; count <= 5; ++count) {
      for (int64_t n = 0; n <= 41; ++n) {
        std::vector<ScaledRowTerm> terms;
        for (int t = 0; t < count; ++t) {
          terms.push_back({static_cast<int32_t>(rng() % 5), scales[(n + t * 3) % 8]});
        }
        std::vector<uint32_t> dst(static_cast<size_t>(n) + 2), want;
        for (auto& v : dst)
          v = static_cast<uint32_t>(rng() % 2 ? rng() : 0x7fffff00u + rng() % 512);
        want = dst;
        for (const ScaledRowTerm& t : terms) {
          for (int64_t j = 0; j < n; ++j) {
            want[j] = static_cast<uint32_t>(static_cast<int64_t>(want[j]) +
                                            int64_t{t.scale} * x[1 + t.row * kLd + j]);
          }
        }
        kernel(x.data() + 1, kLd, terms.data(), count, n, dst.data());
        ASSERT_EQ(dst, want) << name << " terms " << count << " n " << n;
      }
    }
  }
}

TEST(RequantizeRowTest, EveryKernelMatchesTheScalarDefinition) {
  // Every tail length around the 8- and 16-wide blocks, every shift of the fast path, ReLU or
  // not, accumulators over the whole int32 range (bias 0) and near the edges with a bias.
  std::mt19937_64 rng(23);
  for (const auto& [name, row] : RequantizeRowKernels()) {
    for (int shift = 1; shift <= 31; ++shift) {
      for (int64_t n = 0; n <= 41; n += (shift % 4 == 0 ? 1 : 7)) {
        for (bool relu : {false, true}) {
          const int32_t bias = static_cast<int32_t>(rng() % 2001) - 1000;
          std::vector<int32_t> acc(static_cast<size_t>(n) + 2);
          for (auto& a : acc) {  // acc + bias must fit int32: |bias| <= 1000
            const uint64_t r = rng();
            const int32_t edge = INT32_MAX - 1000 - static_cast<int32_t>(r % 5000);
            a = r % 3 == 0
                    ? std::clamp(static_cast<int32_t>(r >> 32), -INT32_MAX + 1000, INT32_MAX - 1000)
                : r % 3 == 1 ? edge
                             : -edge;
          }
          std::vector<int8_t> got(static_cast<size_t>(n) + 2, 77), want(got);
          for (int64_t i = 0; i < n; ++i) {
            want[i + 1] = RequantizeScalar(acc[i + 1] + bias, shift, relu);
          }
          row(acc.data() + 1, n, bias, shift, relu ? 0 : -128, got.data() + 1);
          ASSERT_EQ(got, want) << name << " shift " << shift << " n " << n << " relu " << relu;
        }
      }
    }
  }
}

TEST(RequantizeVoteTest, EveryKernelMatchesTheVoteOfTheScalarDefinition) {
  // Three replicas whose deltas are zero, equal to another replica's, or their own (so that
  // every vote pattern occurs), over tails around the 16-wide blocks and every fast-path shift.
  // Each replica's sum acc + bias + delta fits int32; acc + bias alone may not be near it.
  std::mt19937_64 rng(29);
  for (const auto& [name, vote] : RequantizeVoteKernels()) {
    for (int shift = 1; shift <= 31; ++shift) {
      for (int64_t n = 0; n <= 41; n += (shift % 4 == 0 ? 1 : 5)) {
        for (bool relu : {false, true}) {
          const int32_t bias = static_cast<int32_t>(rng() % 2001) - 1000;
          std::vector<int32_t> acc(static_cast<size_t>(n) + 2);
          std::vector<uint32_t> d[3];
          for (auto& r : d) r.assign(acc.size(), 0);
          for (size_t i = 0; i < acc.size(); ++i) {
            acc[i] = static_cast<int32_t>(rng() >> 34) - (1 << 29);
            for (int r = 0; r < 3; ++r) {
              const uint64_t pick = rng() % 4;
              const int32_t own = static_cast<int32_t>(rng() >> 35) - (1 << 28);
              d[r][i] = pick == 0            ? 0
                        : pick == 1 && r > 0 ? d[r - 1][i]
                                             : static_cast<uint32_t>(own);
            }
          }
          std::vector<int8_t> got(static_cast<size_t>(n) + 2, 77), want(got);
          for (int64_t i = 1; i <= n; ++i) {
            int8_t v[3];
            for (int r = 0; r < 3; ++r) {
              v[r] = RequantizeScalar(static_cast<int32_t>(static_cast<uint32_t>(acc[i]) +
                                                           static_cast<uint32_t>(bias) + d[r][i]),
                                      shift, relu);
            }
            want[i] = MajorityVote(v[0], v[1], v[2]);
          }
          const uint32_t* rows[3] = {d[0].data() + 1, d[1].data() + 1, d[2].data() + 1};
          vote(acc.data() + 1, rows, n, bias, shift, relu ? 0 : -128, got.data() + 1);
          ASSERT_EQ(got, want) << name << " shift " << shift << " n " << n << " relu " << relu;
        }
      }
    }
  }
}

TEST(ExactSgemmTest, MatchesNaiveAcrossChunkBoundaries) {
  std::mt19937_64 rng(4);
  for (int k : {1, 1023, 1024, 1025, 2500}) {
    for (int n : {1, 7}) {
      for (int cols : {1, 33}) {
        std::vector<int8_t> w = RandomMatrix(static_cast<size_t>(n) * k, rng);
        std::vector<int8_t> x = RandomMatrix(static_cast<size_t>(k) * cols, rng);
        if (k == 2500) std::fill(x.begin(), x.end(), int8_t{-128});
        if (k == 2500 && n == 7) std::fill(w.begin(), w.end(), int8_t{-128});
        std::vector<float> wf(w.begin(), w.end()), xf(x.begin(), x.end());
        std::vector<float> scratch(static_cast<size_t>(n) * cols);
        std::vector<int32_t> c(static_cast<size_t>(n) * cols);
        ExactInt8Gemm(n, cols, k, wf.data(), k, xf.data(), cols, c.data(), cols, scratch.data());
        EXPECT_EQ(c, NaiveGemm(w, x, n, k, cols)) << "n=" << n << " k=" << k << " cols=" << cols;
      }
    }
  }
}

// RunMacLayer (im2col + GEMM, or the direct kernel) against the six-deep reference loop, on
// several images at once, each feeding two (clean) outputs.
void CheckLayer(const ConvGeometry& g, bool relu, uint64_t seed, bool linear = false) {
  SCOPED_TRACE("conv " + std::to_string(g.in_c) + "x" + std::to_string(g.in_h) + "x" +
               std::to_string(g.in_w) + " -> " + std::to_string(g.out_c) + " k" +
               std::to_string(g.kh) + "x" + std::to_string(g.kw) + " s" + std::to_string(g.sh) +
               "," + std::to_string(g.sw) + " p" + std::to_string(g.ph) + "," +
               std::to_string(g.pw) + " g" + std::to_string(g.groups));
  const pb::QuantizedModel model = testing::SingleLayerModel(g, relu, seed, linear);
  auto compiled = testing::Compile(model);
  ASSERT_NE(compiled, nullptr);
  const MacLayer& L = compiled->mac_layers()[0];
  const int images = 3;
  const std::vector<int8_t> in = testing::RandomImages(L.in_elements() * images, seed + 1);
  std::vector<int8_t> out(static_cast<size_t>(L.out_elements() * images), 55);
  std::vector<int8_t> copy(out.size(), 66);
  std::vector<MacImage> batch(images);
  for (int b = 0; b < images; ++b) {
    batch[b].input = in.data() + b * L.in_elements();
    MacTarget t;
    t.output = out.data() + b * L.out_elements();
    batch[b].targets.push_back(t);
    t.output = copy.data() + b * L.out_elements();
    batch[b].targets.push_back(t);
  }
  RunMacLayer(L, batch);
  EXPECT_EQ(copy, out);
  for (int b = 0; b < images; ++b) {
    std::vector<int8_t> x(in.begin() + b * L.in_elements(), in.begin() + (b + 1) * L.in_elements());
    const std::vector<int32_t> want_acc = testing::RefConvAcc(g, x, L.weights, L.bias);
    const std::vector<int8_t> want_out =
        testing::RefRequantPlanes(want_acc, g.out_c, L.shift, relu);
    const std::vector<int8_t> got_out(out.begin() + b * L.out_elements(),
                                      out.begin() + (b + 1) * L.out_elements());
    ASSERT_EQ(got_out, want_out) << "image " << b;
  }
}

ConvGeometry Geo(int in_c, int h, int w, int out_c, int kh, int kw, int sh, int sw, int ph, int pw,
                 int groups) {
  ConvGeometry g;
  g.in_c = in_c;
  g.in_h = h;
  g.in_w = w;
  g.out_c = out_c;
  g.kh = kh;
  g.kw = kw;
  g.sh = sh;
  g.sw = sw;
  g.ph = ph;
  g.pw = pw;
  g.groups = groups;
  return g;
}

TEST(MacLayerTest, ConvolutionsMatchReference) {
  uint64_t seed = 10;
  CheckLayer(Geo(3, 9, 7, 8, 3, 3, 1, 1, 1, 1, 1), true, ++seed);     // 3x3 same
  CheckLayer(Geo(5, 10, 11, 6, 3, 3, 2, 2, 1, 1, 1), false, ++seed);  // strided
  CheckLayer(Geo(4, 8, 8, 9, 1, 1, 1, 1, 0, 0, 1), true, ++seed);     // pointwise
  CheckLayer(Geo(4, 9, 9, 5, 1, 1, 2, 2, 0, 0, 1), false, ++seed);    // strided 1x1
  CheckLayer(Geo(2, 7, 12, 3, 5, 3, 2, 1, 2, 0, 1), false, ++seed);   // non-square
  CheckLayer(Geo(8, 6, 6, 8, 3, 3, 1, 1, 1, 1, 8), true, ++seed);     // depthwise
  CheckLayer(Geo(6, 7, 7, 6, 3, 3, 2, 2, 1, 1, 6), false, ++seed);    // depthwise strided
  CheckLayer(Geo(8, 6, 5, 16, 3, 3, 1, 1, 1, 1, 2), true, ++seed);    // grouped, GEMM path
  CheckLayer(Geo(6, 5, 5, 12, 3, 3, 1, 1, 0, 0, 3), false, ++seed);   // grouped, direct path
  CheckLayer(Geo(1, 4, 4, 2, 4, 4, 1, 1, 0, 0, 1), true, ++seed);     // one output pixel
  CheckLayer(Geo(1, 3, 3, 2, 3, 3, 1, 1, 2, 2, 1), false, ++seed);    // windows in padding
  CheckLayer(Geo(130, 5, 5, 33, 3, 3, 1, 1, 1, 1, 1), true, ++seed);  // K = 1170 > 1024
  CheckLayer(Geo(2, 4, 3, 3, 5, 5, 1, 1, 2, 2, 1), false, ++seed);    // 5x5 "same", tiny rows
  CheckLayer(Geo(3, 6, 5, 2, 3, 5, 1, 1, 0, 2, 1), true, ++seed);     // same width only
  CheckLayer(Geo(2, 5, 1, 2, 3, 1, 1, 1, 1, 0, 1), false, ++seed);    // one column
}

TEST(MacLayerTest, LinearMatchesReference) {
  CheckLayer(Geo(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1), false, 40, true);
  CheckLayer(Geo(37, 1, 1, 10, 1, 1, 1, 1, 0, 0, 1), true, 41, true);
  CheckLayer(Geo(2500, 1, 1, 5, 1, 1, 1, 1, 0, 0, 1), false, 42, true);
}

TEST(MacLayerTest, RandomGeometriesMatchReference) {
  std::mt19937_64 rng(99);
  for (int trial = 0; trial < 30; ++trial) {
    const int groups = static_cast<int>(rng() % 3) == 0 ? static_cast<int>(1 + rng() % 4) : 1;
    const int in_c = groups * static_cast<int>(1 + rng() % 6);
    const int out_c = groups * static_cast<int>(1 + rng() % 7);
    const int kh = static_cast<int>(1 + rng() % 4), kw = static_cast<int>(1 + rng() % 4);
    const int ph = static_cast<int>(rng() % kh), pw = static_cast<int>(rng() % kw);
    const int h = kh + static_cast<int>(rng() % 9), w = kw + static_cast<int>(rng() % 9);
    const int sh = static_cast<int>(1 + rng() % 3), sw = static_cast<int>(1 + rng() % 3);
    CheckLayer(Geo(in_c, h, w, out_c, kh, kw, sh, sw, ph, pw, groups), rng() % 2 == 0,
               1000 + trial);
  }
}

}  // namespace
}  // namespace r2f::accel
