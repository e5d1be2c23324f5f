// Fault injection: planted flips give exactly the hand-computed effect; sampled flips have the
// configured rate at every site in both sampling modes; runs are reproducible and independent
// of batching.
#include <gtest/gtest.h>

#include <bitset>
#include <cmath>
#include <random>
#include <utility>
#include <vector>

#include "accel_sim/accelerator.h"
#include "accel_sim/fault_sampler.h"
#include "accel_sim/mac_kernels.h"
#include "accel_sim/tmr_voter.h"
#include "tests/accel_sim/accel_models.h"
#include "tests/accel_sim/accel_reference.h"

namespace r2f::accel {
namespace {

using testing::ConvGeometry;

ConvGeometry Geo(int in_c, int h, int w, int out_c, int k, int s, int p, int groups) {
  ConvGeometry g;
  g.in_c = in_c;
  g.in_h = h;
  g.in_w = w;
  g.out_c = out_c;
  g.kh = g.kw = k;
  g.sh = g.sw = s;
  g.ph = g.pw = p;
  g.groups = groups;
  return g;
}

// One layer, one image: clean accumulators and outputs, and the faulty output for a plan.
class PlantedFlipTest : public ::testing::Test {
 protected:
  // Right shifts in [min_shift, max_shift]; 0 and below take the requantiser's other branch.
  void Build(const ConvGeometry& g, bool relu, uint64_t seed, bool linear = false,
             int min_shift = 2, int max_shift = 9) {
    geo_ = g;
    relu_ = relu;
    model_ = testing::SingleLayerModel(g, relu, seed, linear, min_shift, max_shift);
    compiled_ = testing::Compile(model_);
    ASSERT_NE(compiled_, nullptr);
    const MacLayer& L = layer();
    input_ = testing::RandomImages(L.in_elements(), seed + 100);
    clean_acc_ = testing::RefConvAcc(g, input_, L.weights, L.bias);
    clean_out_ = Requant(clean_acc_);
  }
  const MacLayer& layer() const { return compiled_->mac_layers()[0]; }

  // The layer's output on the image with the plans' flips (one plan, or three TMR replicas).
  std::vector<int8_t> Faulty(const std::vector<FaultPlan>& plans) {
    std::vector<int8_t> out(clean_out_.size(), 77);
    Status st = RunMacLayerWithPlans(layer(), input_.data(), plans, out.data());
    EXPECT_TRUE(st.ok()) << st.ToString();
    return out;
  }
  std::vector<int8_t> Faulty(const FaultPlan& plan) { return Faulty(std::vector<FaultPlan>{plan}); }

  std::vector<int8_t> Requant(const std::vector<int32_t>& acc) const {
    return testing::RefRequantPlanes(acc, geo_.out_c, layer().shift, relu_);
  }

  // Appends `count` flips of `site`, element and bit uniform over the site, to `plan`.
  void AddRandomFlips(FaultSite site, int count, std::mt19937_64& rng, FaultPlan* plan) const {
    const uint64_t elements = layer().Exposure().elements[static_cast<int>(site)];
    const auto bits = static_cast<uint64_t>(kSiteBitWidth[static_cast<int>(site)]);
    for (int i = 0; i < count; ++i) {
      const auto element = static_cast<uint32_t>(rng() % elements);
      plan->at(site).push_back({element, static_cast<uint32_t>(rng() % bits)});
    }
  }

  // The accumulators (bias included, before hidden flips) of the plan's execution, computed on
  // its corrupted weights and input by the reference convolution.
  std::vector<int32_t> CorruptedAcc(const FaultPlan& plan) const {
    const MacLayer& L = layer();
    std::vector<int8_t> w = L.weights, x = input_;
    for (const BitFlip& f : plan.at(FaultSite::kWeights))
      w[f.element] ^= static_cast<int8_t>(1 << f.bit);
    for (const BitFlip& f : plan.at(FaultSite::kInputs))
      x[f.element] ^= static_cast<int8_t>(1 << f.bit);
    return testing::RefConvAcc(geo_, x, w, L.bias);
  }

  ConvGeometry geo_;
  bool relu_ = false;
  pb::QuantizedModel model_;
  std::unique_ptr<CompiledModel> compiled_;
  std::vector<int8_t> input_;
  std::vector<int8_t> clean_out_;
  std::vector<int32_t> clean_acc_;
};

FaultPlan OneFlip(FaultSite site, uint32_t element, uint32_t bit) {
  FaultPlan plan;
  plan.at(site).push_back({element, bit});
  return plan;
}

TEST_F(PlantedFlipTest, WeightFlipAddsDeltaTimesInputToItsChannel) {
  const ConvGeometry g = Geo(3, 7, 6, 4, 3, 1, 1, 1);
  Build(g, false, 11);
  const int oh = g.OutH(), ow = g.OutW();
  for (uint32_t bit : {0u, 3u, 7u}) {
    const int oc = 2, ci = 1, ky = 0, kx = 2;
    const uint32_t wi = static_cast<uint32_t>(((oc * 3 + ci) * 3 + ky) * 3 + kx);
    const int8_t w = layer().weights[wi];
    const int32_t dw = static_cast<int8_t>(w ^ (1 << bit)) - w;
    std::vector<int32_t> acc = clean_acc_;
    for (int oy = 0; oy < oh; ++oy) {
      for (int ox = 0; ox < ow; ++ox) {
        const int iy = oy - 1 + ky, ix = ox - 1 + kx;
        if (iy < 0 || iy >= g.in_h || ix < 0 || ix >= g.in_w) continue;
        acc[(oc * oh + oy) * ow + ox] += dw * input_[(ci * g.in_h + iy) * g.in_w + ix];
      }
    }
    EXPECT_EQ(Faulty(OneFlip(FaultSite::kWeights, wi, bit)), Requant(acc)) << "bit " << bit;
  }
}

TEST_F(PlantedFlipTest, InputFlipReachesEveryWindowAndChannelOfItsGroup) {
  for (const ConvGeometry& g : {Geo(4, 6, 6, 6, 3, 1, 1, 2), Geo(3, 9, 9, 5, 3, 2, 1, 1)}) {
    Build(g, true, 12);
    const int oh = g.OutH(), ow = g.OutW();
    const int cin_g = g.in_c / g.groups, cout_g = g.out_c / g.groups;
    const int c = g.in_c - 1, iy = 2, ix = 3;
    const uint32_t e = static_cast<uint32_t>((c * g.in_h + iy) * g.in_w + ix);
    for (uint32_t bit : {1u, 7u}) {
      const int8_t x = input_[e];
      const int32_t dx = static_cast<int8_t>(x ^ (1 << bit)) - x;
      std::vector<int32_t> acc = clean_acc_;
      int touched = 0;
      for (int oc = 0; oc < g.out_c; ++oc) {
        if (oc / cout_g != c / cin_g) continue;
        for (int oy = 0; oy < oh; ++oy) {
          for (int ox = 0; ox < ow; ++ox) {
            for (int ky = 0; ky < g.kh; ++ky) {
              for (int kx = 0; kx < g.kw; ++kx) {
                if (oy * g.sh - g.ph + ky != iy || ox * g.sw - g.pw + kx != ix) continue;
                const int w = layer().weights[((oc * cin_g + c % cin_g) * g.kh + ky) * g.kw + kx];
                acc[(oc * oh + oy) * ow + ox] += w * dx;
                ++touched;
              }
            }
          }
        }
      }
      EXPECT_GT(touched, cout_g);  // several windows per channel read this element
      EXPECT_EQ(Faulty(OneFlip(FaultSite::kInputs, e, bit)), Requant(acc)) << "bit " << bit;
    }
  }
}

TEST_F(PlantedFlipTest, HiddenFlipXorsOneAccumulatorBeforeRequantisation) {
  Build(Geo(2, 5, 5, 3, 3, 1, 1, 1), false, 13);
  for (uint32_t bit : {0u, 9u, 20u, 31u}) {
    const uint32_t e = 17;
    std::vector<int32_t> acc = clean_acc_;
    acc[e] = static_cast<int32_t>(static_cast<uint32_t>(acc[e]) ^ (1u << bit));
    const std::vector<int8_t> got = Faulty(OneFlip(FaultSite::kHidden, e, bit));
    EXPECT_EQ(got, Requant(acc)) << "bit " << bit;
    for (size_t i = 0; i < got.size(); ++i) {
      if (i != e) {
        EXPECT_EQ(got[i], clean_out_[i]);
      }
    }
  }
  // Bit 31 of a small accumulator makes it hugely negative: the output saturates.
  EXPECT_EQ(
      Faulty(OneFlip(FaultSite::kHidden, 17, 31))[17],
      testing::RefRequant(static_cast<int32_t>(static_cast<uint32_t>(clean_acc_[17]) ^ 0x80000000u),
                          layer().shift[0], false));
}

TEST_F(PlantedFlipTest, OutputFlipXorsTheStoredValueAfterActivation) {
  Build(Geo(2, 5, 5, 3, 3, 1, 1, 1), true, 14);
  for (uint32_t bit : {0u, 7u}) {
    const uint32_t e = 30;
    std::vector<int8_t> want = clean_out_;
    want[e] = static_cast<int8_t>(want[e] ^ (1 << bit));
    EXPECT_EQ(Faulty(OneFlip(FaultSite::kOutputs, e, bit)), want);
  }
  // After the ReLU: bit 7 of a non-negative output makes it negative.
  const std::vector<int8_t> got = Faulty(OneFlip(FaultSite::kOutputs, 30, 7));
  EXPECT_LT(got[30], 0);
}

// Random plans on every site at once (several bits of one element, flipped weights reading
// flipped inputs) against the reference re-run with the corrupted operands.
TEST_F(PlantedFlipTest, RandomPlansEqualReferenceWithCorruptedOperands) {
  struct Case {
    ConvGeometry g;
    bool linear;
  };
  const Case cases[] = {{Geo(3, 6, 7, 5, 3, 1, 1, 1), false}, {Geo(4, 9, 8, 6, 3, 2, 1, 2), false},
                        {Geo(6, 6, 6, 6, 3, 1, 1, 6), false}, {Geo(4, 5, 5, 8, 1, 1, 0, 1), false},
                        {Geo(2, 6, 6, 3, 5, 2, 2, 1), false}, {Geo(40, 1, 1, 7, 1, 1, 0, 1), true},
                        {Geo(8, 6, 6, 16, 3, 1, 1, 2), false}};  // grouped, GEMM path
  std::mt19937_64 rng(77);
  int case_index = 0;
  for (const Case& c : cases) {
    Build(c.g, case_index % 2 == 0, 20 + case_index, c.linear);
    const MacLayer& L = layer();
    for (int trial = 0; trial < 20; ++trial) {
      FaultPlan plan;
      const int n_w = static_cast<int>(rng() % 6), n_x = static_cast<int>(rng() % 6);
      AddRandomFlips(FaultSite::kWeights, n_w, rng, &plan);
      AddRandomFlips(FaultSite::kInputs, n_x, rng, &plan);
      // Make some flipped weights read flipped inputs: the cross term must be exact.
      if (n_w > 0 && !c.linear)
        plan.at(FaultSite::kInputs).push_back({static_cast<uint32_t>(L.in_elements() / 2), 7});
      AddRandomFlips(FaultSite::kHidden, 3, rng, &plan);
      AddRandomFlips(FaultSite::kOutputs, 3, rng, &plan);
      // The same bit twice cancels; different bits of one element combine.
      plan.at(FaultSite::kHidden).push_back(plan.at(FaultSite::kHidden)[0]);
      std::vector<int32_t> acc = CorruptedAcc(plan);
      for (const BitFlip& f : plan.at(FaultSite::kHidden)) {
        acc[f.element] =
            static_cast<int32_t>(static_cast<uint32_t>(acc[f.element]) ^ (1u << f.bit));
      }
      std::vector<int8_t> want = testing::RefRequantPlanes(acc, c.g.out_c, L.shift, relu_);
      for (const BitFlip& f : plan.at(FaultSite::kOutputs))
        want[f.element] ^= static_cast<int8_t>(1 << f.bit);
      ASSERT_EQ(Faulty(plan), want) << "case " << case_index << " trial " << trial;
    }
    ++case_index;
  }
}

TEST_F(PlantedFlipTest, TmrVotesThePlannedReplicas) {
  // Three replicas with random flips at every site: the voted output is the bitwise vote of the
  // three single executions, including channels where only one replica is faulty. One case
  // has left shifts and shift 0, which the vote requantises by the general definition; the last
  // is grouped on the GEMM path, whose input-flip deltas are built per group.
  std::mt19937_64 rng(5);
  struct Case {
    ConvGeometry g;
    int min_shift, max_shift;
  };
  for (const Case& c :
       {Case{Geo(3, 6, 6, 5, 3, 1, 1, 1), 2, 9}, Case{Geo(4, 7, 7, 4, 3, 2, 1, 4), 2, 9},
        Case{Geo(3, 6, 6, 6, 3, 1, 1, 1), -2, 0}, Case{Geo(8, 6, 6, 16, 3, 1, 1, 2), 2, 9}}) {
    Build(c.g, true, 40, false, c.min_shift, c.max_shift);
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<FaultPlan> plans(3);
      for (FaultPlan& p : plans) {
        const int n = static_cast<int>(rng() % 4);
        for (int s = 0; s < kNumFaultSites; ++s) AddRandomFlips(FaultSite(s), n, rng, &p);
      }
      // Replica 2 sometimes shares a hidden flip with replica 0: a corruption two replicas agree on
      // wins.
      if (trial % 2 == 0 && !plans[0].at(FaultSite::kHidden).empty()) {
        plans[2].at(FaultSite::kHidden).push_back(plans[0].at(FaultSite::kHidden)[0]);
      }
      const std::vector<int8_t> a = Faulty(plans[0]), b = Faulty(plans[1]), c = Faulty(plans[2]);
      std::vector<int8_t> want(a.size());
      for (size_t i = 0; i < a.size(); ++i) want[i] = MajorityVote(a[i], b[i], c[i]);
      ASSERT_EQ(Faulty(plans), want) << "trial " << trial;
    }
  }
}

TEST_F(PlantedFlipTest, DisagreementMarksWhereTheReplicasSumsDifferOrAFlipHitTheSum) {
  // The exact method patches where the mask is set, so it must be set wherever the vote could
  // be wrong: where the three replicas' accumulators (before hidden flips) are not all equal,
  // and where any replica's hidden state or output was flipped. Nowhere else. Compared with
  // accumulators computed from the corrupted operands, replica by replica.
  std::mt19937_64 rng(8);
  for (const ConvGeometry& g : {Geo(3, 7, 7, 6, 3, 1, 1, 1), Geo(4, 6, 6, 8, 3, 2, 1, 2)}) {
    Build(g, true, 41);
    const MacLayer& L = layer();
    int marked_total = 0;
    for (int trial = 0; trial < 30; ++trial) {
      std::vector<FaultPlan> plans(3);
      std::vector<std::vector<int32_t>> acc(3);
      std::vector<uint8_t> want(static_cast<size_t>(L.out_elements()), 0);
      for (int r = 0; r < 3; ++r) {
        FaultPlan& p = plans[r];
        // Sometimes no weight flip, sometimes one or two: both epilogue paths run.
        AddRandomFlips(FaultSite::kWeights, static_cast<int>(rng() % 3), rng, &p);
        AddRandomFlips(FaultSite::kInputs, static_cast<int>(rng() % 3), rng, &p);
        const int specials = static_cast<int>(rng() % 2);
        AddRandomFlips(FaultSite::kHidden, specials, rng, &p);
        AddRandomFlips(FaultSite::kOutputs, specials, rng, &p);
        // Two replicas with the same weight flip agree on a wrong sum: marked only where the
        // third differs from them.
        if (r == 2 && trial % 3 == 0) p.at(FaultSite::kWeights) = plans[0].at(FaultSite::kWeights);
        acc[r] = CorruptedAcc(p);
        for (FaultSite site : {FaultSite::kHidden, FaultSite::kOutputs}) {
          for (const BitFlip& f : p.at(site)) want[f.element] = 1;
        }
      }
      for (size_t e = 0; e < want.size(); ++e) {
        want[e] |= acc[0][e] != acc[1][e] || acc[1][e] != acc[2][e];
        marked_total += want[e];
      }
      std::vector<int8_t> out(clean_out_.size());
      std::vector<uint8_t> got(want.size(), 9);
      ASSERT_TRUE(RunMacLayerWithPlans(L, input_.data(), plans, out.data(), got.data()).ok());
      ASSERT_EQ(got, want) << "trial " << trial;
    }
    EXPECT_GT(marked_total, 0);
  }
}

TEST_F(PlantedFlipTest, FlipOutsideItsSiteIsAnError) {
  Build(Geo(2, 4, 4, 3, 3, 1, 1, 1), false, 15);
  std::vector<int8_t> out(clean_out_.size());
  Status st = RunMacLayerWithPlans(layer(), input_.data(), {OneFlip(FaultSite::kWeights, 54, 0)},
                                   out.data());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("layer 1 'conv': weights flip (element 54, bit 0)"),
            std::string::npos)
      << st.message();
  EXPECT_FALSE(
      RunMacLayerWithPlans(layer(), input_.data(), {OneFlip(FaultSite::kHidden, 0, 32)}, out.data())
          .ok());
  EXPECT_FALSE(
      RunMacLayerWithPlans(layer(), input_.data(), std::vector<FaultPlan>(2), out.data()).ok());
}

// ---------------------------------------------------------------------------------------------
// Sampling.

double Sigmas(double observed, double n, double p) {
  return std::abs(observed - n * p) / std::sqrt(n * p * (1 - p));
}

TEST(FaultSamplerTest, BothModesFlipAtTheConfiguredRate) {
  for (Sampling mode : {Sampling::kSparse, Sampling::kDense}) {
    const uint64_t n = 100000;
    const double ber = 2e-3;
    uint64_t total = 0, first_half = 0;
    std::vector<uint64_t> positions;
    for (uint64_t stream = 0; stream < 40; ++stream) {
      Rng rng(stream);
      positions.clear();
      SampleFlipPositions(&rng, n, ber, mode, &positions);
      for (size_t i = 0; i < positions.size(); ++i) {
        ASSERT_LT(positions[i], n);
        if (i > 0) {
          ASSERT_GT(positions[i], positions[i - 1]);
        }
        first_half += positions[i] < n / 2;
      }
      total += positions.size();
    }
    EXPECT_LT(Sigmas(static_cast<double>(total), 40.0 * n, ber), 4.0) << "total " << total;
    // Positions are uniform: half of them land in the first half.
    EXPECT_LT(Sigmas(static_cast<double>(first_half), static_cast<double>(total), 0.5), 4.0);
  }
}

TEST(FaultSamplerTest, EdgeRates) {
  Rng rng(1);
  std::vector<uint64_t> positions;
  SampleFlipPositions(&rng, 1000, 0.0, Sampling::kSparse, &positions);
  EXPECT_TRUE(positions.empty());
  SampleFlipPositions(&rng, 5, 1.0, Sampling::kSparse, &positions);
  EXPECT_EQ(positions, (std::vector<uint64_t>{0, 1, 2, 3, 4}));
  positions.clear();
  // A tiny rate over a huge range costs nothing with sparse sampling.
  SampleFlipPositions(&rng, uint64_t{1} << 62, 1e-18, Sampling::kSparse, &positions);
  EXPECT_LT(positions.size(), 100u);
}

TEST(FaultSamplerTest, StreamsArePinned) {
  // Recorded with the original accel_sim generator before it moved to common/base/random.h: every
  // simulated fault of every experiment depends on these streams, so a change to SplitMix64,
  // HashCombine, Rng or the key layout must show up here, not as silently different results.
  EXPECT_EQ(FaultStream(FaultKey{1, 2, 3, 4, 0}, FaultSite::kWeights).Next(),
            0x92a7aaef35fd212bULL);
  // Sparse positions of one stream: the geometric skips on top of the same generator (both
  // values reproduced by an independent Python transcription of the algorithms).
  Rng rng(HashCombine(7, 8));
  std::vector<uint64_t> positions;
  SampleFlipPositions(&rng, 1000000, 1e-5, Sampling::kSparse, &positions);
  EXPECT_EQ(positions, (std::vector<uint64_t>{8483, 346023, 737929, 829076, 926337}));
}

// The sparse sampler's contract, one draw at a time: skip = floor(log(U) / log(1 - ber)) clean
// bits, U = Rng::UniformOpenClosed(), until a skip passes the end. The sampler draws its
// uniforms in blocks; the flips must be those of this loop, across block boundaries and at the
// ends of ranges of every size (every experiment's faults depend on it).
TEST(FaultSamplerTest, SparsePositionsAreOneGeometricSkipPerDraw) {
  std::vector<std::pair<double, uint64_t>> cases;  // (ber, n_bits)
  for (const double ber : {1e-1, 3e-3, 1e-4}) {
    for (const uint64_t n : {uint64_t{1}, uint64_t{9}, uint64_t{1000}, uint64_t{123457}}) {
      cases.emplace_back(ber, n);
    }
  }
  // Huge ranges, where n - pos is not exact in double and a skip may pass 2^64.
  cases.emplace_back(1e-15, (uint64_t{1} << 62) + 3);
  cases.emplace_back(1e-18, (uint64_t{1} << 62) + 3);
  for (const auto& [ber, n] : cases) {
    for (uint64_t stream = 0; stream < 5; ++stream) {
      Rng reference_rng(HashCombine(stream, n));
      std::vector<uint64_t> expected;
      const double inv_log_keep = 1.0 / std::log1p(-ber);
      for (uint64_t pos = 0;;) {
        const double skip = std::floor(std::log(reference_rng.UniformOpenClosed()) * inv_log_keep);
        if (skip >= static_cast<double>(n - pos)) break;
        pos += static_cast<uint64_t>(skip);
        if (pos >= n) break;
        expected.push_back(pos++);
        if (pos >= n) break;
      }
      Rng rng(HashCombine(stream, n));
      std::vector<uint64_t> positions;
      SampleFlipPositions(&rng, n, ber, Sampling::kSparse, &positions);
      ASSERT_EQ(positions, expected) << "ber " << ber << ", n " << n << ", stream " << stream;
    }
  }
}

TEST(FaultSamplerTest, StreamsAreKeyedByEveryComponent) {
  const FaultKey base{1, 2, 3, 4, 0};
  auto first = [](FaultKey k, FaultSite s) { return FaultStream(k, s).Next(); };
  const uint64_t v = first(base, FaultSite::kWeights);
  EXPECT_EQ(v, first(base, FaultSite::kWeights));
  FaultKey k = base;
  k.seed = 9;
  EXPECT_NE(v, first(k, FaultSite::kWeights));
  k = base;
  k.execution_tag = 9;
  EXPECT_NE(v, first(k, FaultSite::kWeights));
  k = base;
  k.sample_id = 9;
  EXPECT_NE(v, first(k, FaultSite::kWeights));
  k = base;
  k.node_id = 9;
  EXPECT_NE(v, first(k, FaultSite::kWeights));
  k = base;
  k.replica = 1;
  EXPECT_NE(v, first(k, FaultSite::kWeights));
  EXPECT_NE(v, first(base, FaultSite::kInputs));
}

// ---------------------------------------------------------------------------------------------
// Through the Accelerator.

class FaultyAcceleratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    graph_ = testing::SmallGraphs()[1];
    model_ = MakeRandomQuantizedModel(graph_, 9).value();
    accel_ = Accelerator::Create(model_, AcceleratorConfig{}).value();
    per_image_ = NumElements(graph_.input_shape());
    pixels_ = testing::RandomPixels(static_cast<size_t>(per_image_ * 4), 3);
  }
  ImageBatch Batch() {
    ImageBatch b{pixels_.data(), 4, {10, 11, 12, 13}};
    return b;
  }
  pb::Graph graph_;
  pb::QuantizedModel model_;
  std::unique_ptr<Accelerator> accel_;
  int64_t per_image_ = 0;
  std::vector<uint8_t> pixels_;
};

TEST_F(FaultyAcceleratorTest, ObservedRateMatchesBerPerSiteInBothModes) {
  for (Sampling mode : {Sampling::kSparse, Sampling::kDense}) {
    FaultConfig f;
    f.ber = 5e-4;
    f.sampling = mode;
    std::array<double, kNumFaultSites> flips = {}, exposed = {};
    for (uint64_t tag = 0; tag < 30; ++tag) {
      auto r = accel_->Infer(Batch(), f, TmrConfig{}, tag, false);
      ASSERT_TRUE(r.ok());
      for (const LayerFaultStats& s : r->stats.faults) {
        for (int site = 0; site < kNumFaultSites; ++site) {
          flips[site] += static_cast<double>(s.flips[site]);
          exposed[site] += static_cast<double>(s.exposed_bits[site]);
        }
      }
    }
    for (int site = 0; site < kNumFaultSites; ++site) {
      SCOPED_TRACE(FaultSiteName(static_cast<FaultSite>(site)));
      EXPECT_GT(flips[site], 20);
      EXPECT_LT(Sigmas(flips[site], exposed[site], f.ber), 4.0)
          << flips[site] << " flips in " << exposed[site] << " bits";
    }
  }
}

TEST_F(FaultyAcceleratorTest, ExposureFollowsTheLayerShapes) {
  FaultConfig f;
  f.ber = 1e-4;
  f.sites = {true, false, true, true};
  auto r = accel_->Infer(Batch(), f, TmrConfig{}, 1, false);
  ASSERT_TRUE(r.ok());
  const pb::Graph& g = accel_->model().graph();
  for (const LayerFaultStats& s : r->stats.faults) {
    const pb::Node& node = g.nodes(static_cast<int>(s.node_id));
    const GemmShape gemm = MacGemmShape(g, node);
    const uint64_t out = static_cast<uint64_t>(NumElements(node.output_shape()));
    EXPECT_EQ(s.exposed_bits[0], static_cast<uint64_t>(gemm.k * gemm.n * gemm.groups) * 8 * 4);
    EXPECT_EQ(s.exposed_bits[1], 0u);  // site disabled
    EXPECT_EQ(s.flips[1], 0u);
    EXPECT_EQ(s.exposed_bits[2], out * 32 * 4);
    EXPECT_EQ(s.exposed_bits[3], out * 8 * 4);
  }
}

TEST_F(FaultyAcceleratorTest, OutputFlipsShowUpAsExactlyThatManyBitDifferences) {
  // A single-layer model: with only the output site on, faulty ^ clean has one set bit per flip.
  ConvGeometry g = Geo(3, 8, 8, 4, 3, 1, 1, 1);
  pb::QuantizedModel model = testing::SingleLayerModel(g, true, 3);
  auto accel = Accelerator::Create(model, AcceleratorConfig{}).value();
  std::vector<uint8_t> px = testing::RandomPixels(3 * 64 * 2, 4);
  ImageBatch b{px.data(), 2, {0, 1}};
  FaultConfig f;
  f.ber = 3e-3;
  f.sites = {false, false, false, true};
  auto clean = accel->Infer(b, FaultConfig{0.0}, TmrConfig{}, 0, false);
  auto faulty = accel->Infer(b, f, TmrConfig{}, 5, false);
  ASSERT_TRUE(clean.ok() && faulty.ok());
  uint64_t bits = 0;
  for (size_t i = 0; i < clean->logits.data.size(); ++i) {
    bits += std::bitset<8>(static_cast<uint8_t>(clean->logits.data[i] ^ faulty->logits.data[i]))
                .count();
  }
  EXPECT_GT(faulty->stats.total_flips, 0u);
  EXPECT_EQ(bits, faulty->stats.total_flips);
}

TEST_F(FaultyAcceleratorTest, SameSeedAndTagReproduceDifferentTagsDiffer) {
  FaultConfig f;
  f.ber = 1e-3;
  auto a = accel_->Infer(Batch(), f, TmrConfig{}, 7, true);
  auto b = accel_->Infer(Batch(), f, TmrConfig{}, 7, true);
  auto c = accel_->Infer(Batch(), f, TmrConfig{}, 8, true);
  f.seed = 2;
  auto d = accel_->Infer(Batch(), f, TmrConfig{}, 7, true);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok() && d.ok());
  auto clean = accel_->Infer(Batch(), FaultConfig{0.0}, TmrConfig{}, 7, true);
  EXPECT_NE(a->layer_outputs[0].data, clean->layer_outputs[0].data);  // faults do something
  for (size_t m = 0; m < a->layer_outputs.size(); ++m) {
    EXPECT_EQ(a->layer_outputs[m].data, b->layer_outputs[m].data);
  }
  EXPECT_EQ(a->stats.total_flips, b->stats.total_flips);
  bool tag_differs = false, seed_differs = false;
  for (size_t m = 0; m < a->layer_outputs.size(); ++m) {
    tag_differs |= a->layer_outputs[m].data != c->layer_outputs[m].data;
    seed_differs |= a->layer_outputs[m].data != d->layer_outputs[m].data;
  }
  EXPECT_TRUE(tag_differs);
  EXPECT_TRUE(seed_differs);
}

TEST_F(FaultyAcceleratorTest, FaultsFollowTheImageNotItsPlaceInTheBatch) {
  FaultConfig f;
  f.ber = 1e-3;
  TmrConfig tmr;
  tmr.mode = TmrMode::kPartial;
  tmr.protected_layers = {accel_->mac_layers()[1]};
  auto all = accel_->Infer(Batch(), f, tmr, 3, true);
  // Images 12 and 10, in that order, in a batch of their own.
  std::vector<uint8_t> px(pixels_.begin() + 2 * per_image_, pixels_.begin() + 3 * per_image_);
  px.insert(px.end(), pixels_.begin(), pixels_.begin() + per_image_);
  ImageBatch two{px.data(), 2, {12, 10}};
  auto part = accel_->Infer(two, f, tmr, 3, true);
  ASSERT_TRUE(all.ok() && part.ok());
  for (size_t m = 0; m < all->layer_outputs.size(); ++m) {
    const int64_t n = all->layer_outputs[m].PerImage();
    const auto& full = all->layer_outputs[m].data;
    const auto& sub = part->layer_outputs[m].data;
    EXPECT_TRUE(std::equal(sub.begin(), sub.begin() + n, full.begin() + 2 * n)) << "layer " << m;
    EXPECT_TRUE(std::equal(sub.begin() + n, sub.end(), full.begin())) << "layer " << m;
  }
}

TEST_F(FaultyAcceleratorTest, TrainingFaultyChainIsTheDeployedInference) {
  FaultConfig f;
  f.ber = 1e-3;
  for (TmrMode mode : {TmrMode::kNone, TmrMode::kPartial, TmrMode::kNetworkWise}) {
    TmrConfig tmr;
    tmr.mode = mode;
    tmr.protected_layers = {accel_->mac_layers()[0], accel_->mac_layers()[2]};
    auto infer = accel_->Infer(Batch(), f, tmr, 4, true);
    auto train = accel_->RunTraining(Batch(), f, tmr, 4);
    ASSERT_TRUE(infer.ok() && train.ok());
    ASSERT_EQ(train->faulty.size(), infer->layer_outputs.size());
    for (size_t m = 0; m < train->faulty.size(); ++m) {
      EXPECT_EQ(train->faulty[m].data, infer->layer_outputs[m].data);
    }
    EXPECT_EQ(train->logits.data, infer->logits.data);
    EXPECT_EQ(train->faulty_stats.total_flips, infer->stats.total_flips);
  }
}

}  // namespace
}  // namespace r2f::accel
