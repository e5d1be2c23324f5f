// The layer-local TMR reference of training mode (ours, docs/retraining.md): each MAC layer's
// voted replicas read the deployed chain's own input, and the server rebuilds the faulty chain
// layer by layer with InferWithOverrides. Checks that the rebuild is bit-exact wherever the
// vote is, that the deployed chain does not depend on the reference, and that the local
// increments are much sparser than the chain reference's.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "accel_sim/accelerator.h"
#include "common/ir/graph.h"
#include "common/ir/model_zoo.h"
#include "tests/accel_sim/accel_models.h"

namespace r2f::accel {
namespace {

// d = y - v (mod 256), the device's increment byte (common/codec/increment_codec.h).
std::vector<uint8_t> Increment(const std::vector<int8_t>& y, const std::vector<int8_t>& v) {
  std::vector<uint8_t> d(y.size());
  for (size_t i = 0; i < y.size(); ++i) {
    d[i] = static_cast<uint8_t>(static_cast<uint8_t>(y[i]) - static_cast<uint8_t>(v[i]));
  }
  return d;
}

int64_t NonZeros(const std::vector<uint8_t>& d) {
  int64_t n = 0;
  for (uint8_t b : d) n += b != 0;
  return n;
}

struct Fixture {
  pb::QuantizedModel model;
  std::unique_ptr<Accelerator> accel;
  std::vector<uint8_t> pixels;
  ImageBatch images;
};

Fixture Make(const pb::Graph& graph, int batch, uint64_t seed) {
  Fixture s;
  s.model = MakeRandomQuantizedModel(graph, seed).value();
  s.accel = Accelerator::Create(s.model, AcceleratorConfig{}).value();
  s.pixels = testing::RandomPixels(static_cast<size_t>(NumElements(graph.input_shape()) * batch),
                                   seed + 1);
  s.images.pixels = s.pixels.data();
  s.images.batch = batch;
  for (int b = 0; b < batch; ++b) s.images.sample_ids.push_back(100 + b);
  return s;
}

class LocalReferenceTest : public ::testing::TestWithParam<int> {};

// Per site set. Output flips change one bit of one element of one replica: a vote fails only
// where two replicas flip the same bit of the same element, which does not happen here
// (asserted), so every layer must come back bit for bit. Weight and input flips change whole
// planes or windows of one replica, and hidden flips saturate an element, so with all sites a
// vote can fail where another replica's flip meets them; the rebuild must then be exact up to
// the first such layer and off there by exactly the vote's error.
TEST_P(LocalReferenceTest, ServerRebuildsTheFaultyChainBitForBit) {
  Fixture s = Make(testing::SmallGraphs()[GetParam()], 4, 31);
  Accelerator& accel = *s.accel;
  const size_t layers = accel.mac_layers().size();
  TmrConfig partial;
  partial.mode = TmrMode::kPartial;
  partial.protected_layers = {accel.mac_layers()[1]};
  for (bool all_sites : {false, true}) {
    FaultConfig f;
    f.ber = 3e-4;
    f.seed = 3;
    if (!all_sites) f.sites = {false, false, false, true};
    for (const TmrConfig& tmr : {TmrConfig{}, partial}) {
      SCOPED_TRACE(std::string(all_sites ? "all sites, " : "outputs, ") + TmrModeName(tmr.mode));
      auto local = accel.RunTraining(s.images, f, tmr, 7, TrainingReference::kLocal);
      auto chain = accel.RunTraining(s.images, f, tmr, 7, TrainingReference::kChain);
      ASSERT_TRUE(local.ok()) << local.status().ToString();
      ASSERT_TRUE(chain.ok()) << chain.status().ToString();
      // The deployed chain does not depend on the reference run beside it (the local reference
      // shares its inputs, which must come back unflipped), and both references cost LW-TMR.
      EXPECT_EQ(local->logits.data, chain->logits.data);
      for (size_t m = 0; m < layers; ++m) {
        EXPECT_EQ(local->faulty[m].data, chain->faulty[m].data) << "layer " << m;
        EXPECT_EQ(local->reference_stats.cycles[m].executions, 3);
      }
      EXPECT_EQ(local->reference_stats.total_cycles, chain->reference_stats.total_cycles);
      EXPECT_EQ(local->faulty_stats.total_flips, chain->faulty_stats.total_flips);

      // f_l(x_l): the clean function of each layer on the faulty chain's own input, from a
      // clean run whose MAC outputs are replaced by the faulty ones (recorded before that).
      std::vector<std::vector<int8_t>> own(layers);
      MacOutputHook replay = [&](size_t m, int8_t* out, int64_t n) {
        own[m].assign(out, out + n);
        std::copy(local->faulty[m].data.begin(), local->faulty[m].data.end(), out);
        return Status::Ok();
      };
      ASSERT_TRUE(accel.InferWithOverrides(s.images, replay, false).ok());
      size_t first_bad_vote = layers;
      int own_faults = 0;
      bool chain_differs = false;
      for (size_t m = 0; m < layers; ++m) {
        if (local->reference[m].data != own[m] && first_bad_vote == layers) first_bad_vote = m;
        own_faults += own[m] != local->faulty[m].data;
        chain_differs |= chain->reference[m].data != own[m];
      }
      if (!all_sites) {
        ASSERT_EQ(first_bad_vote, layers) << "a vote failed";
      }
      EXPECT_GE(own_faults, 2);    // the layers' own faults are visible
      EXPECT_TRUE(chain_differs);  // and the two references differ (propagated errors)

      // The server: the clean graph in order, each layer's increment added to its clean value.
      std::vector<std::vector<int8_t>> rebuilt(layers);
      MacOutputHook add = [&](size_t m, int8_t* out, int64_t n) {
        const std::vector<uint8_t> d = Increment(local->faulty[m].data, local->reference[m].data);
        if (static_cast<size_t>(n) != d.size()) return Status::Internal("size");
        for (int64_t i = 0; i < n; ++i) {
          out[i] = static_cast<int8_t>(static_cast<uint8_t>(out[i]) + d[i]);
        }
        rebuilt[m].assign(out, out + n);
        return Status::Ok();
      };
      auto run = accel.InferWithOverrides(s.images, add, /*keep_layer_outputs=*/true);
      ASSERT_TRUE(run.ok()) << run.status().ToString();
      for (size_t m = 0; m < first_bad_vote; ++m) {
        EXPECT_EQ(rebuilt[m], local->faulty[m].data) << "layer " << m;
        EXPECT_EQ(run->layer_outputs[m].data, local->faulty[m].data) << "layer " << m;
      }
      if (first_bad_vote == layers) {
        EXPECT_EQ(run->logits.data, local->logits.data);
      } else {
        // rebuilt - y = f(x) - v (mod 256) element by element: the vote's error, nothing else.
        const size_t m = first_bad_vote;
        EXPECT_EQ(Increment(rebuilt[m], local->faulty[m].data),
                  Increment(own[m], local->reference[m].data))
            << "layer " << m;
      }

      // The chain reference's increments do not survive this reconstruction: the test can
      // tell the references apart.
      bool chain_lossless = true;
      MacOutputHook add_chain = [&](size_t m, int8_t* out, int64_t n) {
        const std::vector<uint8_t> d = Increment(chain->faulty[m].data, chain->reference[m].data);
        for (int64_t i = 0; i < n; ++i) {
          out[i] = static_cast<int8_t>(static_cast<uint8_t>(out[i]) + d[i]);
        }
        chain_lossless &= std::equal(out, out + n, chain->faulty[m].data.begin());
        return Status::Ok();
      };
      ASSERT_TRUE(accel.InferWithOverrides(s.images, add_chain, false).ok());
      EXPECT_FALSE(chain_lossless);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(SmallGraphs, LocalReferenceTest, ::testing::Values(0, 1, 2));

// Errors propagate down the faulty chain, so its outputs differ from the LW-TMR chain almost
// everywhere after the first faults; against the layer-local reference only the layer's own
// faults remain. Counted on a whole ResNet18 with random parameters.
TEST(LocalReferenceSparsityTest, LocalIncrementsAreMuchSparserThanChainIncrements) {
  Fixture s = Make(BuildNetwork(*DefaultNetworkSpec("resnet18")).value(), 2, 5);
  for (double ber : {1e-5, 1e-4}) {
    SCOPED_TRACE(ber);
    FaultConfig f;
    f.ber = ber;
    auto local = s.accel->RunTraining(s.images, f, TmrConfig{}, 3, TrainingReference::kLocal);
    auto chain = s.accel->RunTraining(s.images, f, TmrConfig{}, 3, TrainingReference::kChain);
    ASSERT_TRUE(local.ok() && chain.ok());
    int64_t local_nnz = 0, chain_nnz = 0, elements = 0;
    for (size_t m = 0; m < local->faulty.size(); ++m) {
      local_nnz += NonZeros(Increment(local->faulty[m].data, local->reference[m].data));
      chain_nnz += NonZeros(Increment(chain->faulty[m].data, chain->reference[m].data));
      elements += static_cast<int64_t>(local->faulty[m].data.size());
    }
    std::printf("ber %g: non-zero increments local %lld, chain %lld of %lld\n", ber,
                static_cast<long long>(local_nnz), static_cast<long long>(chain_nnz),
                static_cast<long long>(elements));
    EXPECT_GT(local_nnz, 0);
    EXPECT_LT(local_nnz * 5, chain_nnz);
  }
}

TEST(LocalReferenceApiTest, ErrorsAndTheIdentityHook) {
  EXPECT_EQ(ParseTrainingReference("local").value(), TrainingReference::kLocal);
  EXPECT_EQ(ParseTrainingReference("chain").value(), TrainingReference::kChain);
  EXPECT_FALSE(ParseTrainingReference("lw").ok());
  Fixture s = Make(testing::SmallGraphs()[0], 2, 9);
  TmrConfig nw;
  nw.mode = TmrMode::kNetworkWise;
  FaultConfig f;
  f.ber = 1e-3;
  auto bad = s.accel->RunTraining(s.images, f, nw, 1, TrainingReference::kLocal);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("single deployed chain"), std::string::npos)
      << bad.status().ToString();

  // A hook that changes nothing gives the clean inference.
  int calls = 0;
  MacOutputHook count = [&](size_t, int8_t*, int64_t) {
    ++calls;
    return Status::Ok();
  };
  auto hooked = s.accel->InferWithOverrides(s.images, count, true);
  auto clean = s.accel->Infer(s.images, FaultConfig{}, TmrConfig{}, 0, true);
  ASSERT_TRUE(hooked.ok() && clean.ok());
  EXPECT_EQ(calls, static_cast<int>(s.accel->mac_layers().size()));
  EXPECT_EQ(hooked->logits.data, clean->logits.data);
  for (size_t m = 0; m < clean->layer_outputs.size(); ++m) {
    EXPECT_EQ(hooked->layer_outputs[m].data, clean->layer_outputs[m].data);
  }
  // A hook's error stops the run and comes back.
  MacOutputHook fail = [](size_t m, int8_t*, int64_t) {
    return m == 1 ? Status::Corruption("bad layer") : Status::Ok();
  };
  auto failed = s.accel->InferWithOverrides(s.images, fail, false);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), Status::Code::kCorruption);
  EXPECT_FALSE(s.accel->InferWithOverrides(s.images, MacOutputHook{}, false).ok());
}

}  // namespace
}  // namespace r2f::accel
