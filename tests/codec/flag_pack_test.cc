// common/codec/flag_pack.h: every function gives what a plain loop gives, with the widest
// implementation this CPU has and with the portable one, at lengths around the 8-, 16- and
// 64-element steps of the kernels and at every flag density the exact method sees.
#include "common/codec/flag_pack.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace r2f {
namespace {

struct Data {
  std::vector<int8_t> y, v;
  std::vector<uint8_t> flags;
};

Data MakeData(size_t n, double density, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution flagged(density), zero(0.5);
  Data d;
  for (size_t i = 0; i < n; ++i) {
    d.y.push_back(zero(rng) ? 0 : static_cast<int8_t>(rng() | 1));
    d.v.push_back(flagged(rng) ? static_cast<int8_t>(rng()) : d.y.back());
    d.flags.push_back(flagged(rng) ? static_cast<uint8_t>(1 + rng() % 255) : 0);
  }
  return d;
}

bool Bit(const std::vector<uint8_t>& map, size_t i) { return ((map[i / 8] >> (i % 8)) & 1) != 0; }

class FlagPackTest : public ::testing::TestWithParam<FlagPackIsa> {
 protected:
  void SetUp() override { SetFlagPackIsa(GetParam()); }
  void TearDown() override { SetFlagPackIsa(FlagPackIsa::kBest); }
};

TEST_P(FlagPackTest, EveryFunctionEqualsThePlainLoop) {
  for (size_t n : {0, 1, 7, 8, 15, 16, 17, 63, 64, 65, 127, 128, 1000, 4099}) {
    for (double density : {0.0, 0.03, 0.4, 1.0}) {
      SCOPED_TRACE("n " + std::to_string(n) + ", density " + std::to_string(density));
      const Data d = MakeData(n, density, n * 7 + static_cast<uint64_t>(density * 100));
      const size_t map_bytes = BitmapBytes(n);

      // PackFlagged: the flagged values in order and the flags as bits.
      std::vector<uint8_t> map(map_bytes + 1, 0xEE);
      std::vector<int8_t> packed(n + kPackSlack);
      const size_t k = PackFlagged(d.y.data(), d.flags.data(), n, map.data(), packed.data());
      std::vector<int8_t> expected_packed;
      for (size_t i = 0; i < n; ++i) {
        EXPECT_EQ(Bit(map, i), d.flags[i] != 0) << "bit " << i;
        if (d.flags[i] != 0) expected_packed.push_back(d.y[i]);
      }
      if (n % 8 != 0) {
        EXPECT_EQ(map[map_bytes - 1] >> (n % 8), 0) << "bits past n";
      }
      EXPECT_EQ(map[map_bytes], 0xEE) << "wrote past the bitmap";
      ASSERT_EQ(k, expected_packed.size());
      EXPECT_EQ(std::vector<int8_t>(packed.begin(), packed.begin() + k), expected_packed);
      Result<size_t> count = CountFlags(map.data(), n, "test");
      ASSERT_TRUE(count.ok());
      EXPECT_EQ(*count, k);

      // ExpandFlagged and ScatterFlagged undo it.
      std::vector<int8_t> values = expected_packed;
      values.push_back(0);  // the one byte past the last value they may read
      std::vector<int8_t> expanded(n, 0x55);
      ExpandFlagged(map.data(), values.data(), k, n, expanded.data());
      std::vector<int8_t> scattered = d.v;
      ScatterFlagged(map.data(), values.data(), k, n, scattered.data());
      for (size_t i = 0; i < n; ++i) {
        EXPECT_EQ(expanded[i], d.flags[i] != 0 ? d.y[i] : 0) << "expand " << i;
        EXPECT_EQ(scattered[i], d.flags[i] != 0 ? d.y[i] : d.v[i]) << "scatter " << i;
      }

      // DifferBitmap and ScanExact.
      std::vector<uint8_t> differ(map_bytes + 1, 0xEE);
      const size_t differing = DifferBitmap(d.y.data(), d.v.data(), n, differ.data());
      std::vector<uint8_t> unflagged_differ(map_bytes + 1, 0xEE), flag_map(map_bytes + 1, 0xEE);
      std::vector<int8_t> flagged_values(n + kPackSlack);
      const ExactScan scan =
          ScanExact(d.y.data(), d.v.data(), d.flags.data(), n, unflagged_differ.data(),
                    flag_map.data(), flagged_values.data());
      ExactScan want;
      size_t want_differing = 0;
      for (size_t i = 0; i < n; ++i) {
        const bool flagged = d.flags[i] != 0;
        EXPECT_EQ(Bit(differ, i), d.y[i] != d.v[i]) << "differ " << i;
        EXPECT_EQ(Bit(unflagged_differ, i), !flagged && d.y[i] != d.v[i]) << "scan differ " << i;
        EXPECT_EQ(Bit(flag_map, i), flagged) << "scan flag " << i;
        want_differing += d.y[i] != d.v[i];
        want.equal += d.y[i] == d.v[i];
        want.differ += !flagged && d.y[i] != d.v[i];
        want.flagged += flagged;
        want.zeros += d.y[i] == 0;
        want.flagged_nonzero += flagged && d.y[i] != 0;
        bool deep = i >= 4;
        for (size_t j = 1; deep && j <= 4; ++j) deep = d.y[i] == d.y[i - j];
        want.run_bytes += deep;
      }
      if (n % 8 != 0) {
        EXPECT_EQ(differ[map_bytes - 1] >> (n % 8), 0) << "differ bits past n";
        EXPECT_EQ(unflagged_differ[map_bytes - 1] >> (n % 8), 0) << "scan differ bits past n";
        EXPECT_EQ(flag_map[map_bytes - 1] >> (n % 8), 0) << "scan flag bits past n";
      }
      EXPECT_EQ(differ[map_bytes], 0xEE) << "DifferBitmap wrote past the bitmap";
      EXPECT_EQ(unflagged_differ[map_bytes], 0xEE) << "ScanExact wrote past a bitmap";
      EXPECT_EQ(flag_map[map_bytes], 0xEE) << "ScanExact wrote past a bitmap";
      EXPECT_EQ(differing, want_differing);
      EXPECT_EQ(scan.equal, want.equal);
      EXPECT_EQ(scan.differ, want.differ);
      EXPECT_EQ(scan.flagged, want.flagged);
      EXPECT_EQ(scan.zeros, want.zeros);
      EXPECT_EQ(scan.flagged_nonzero, want.flagged_nonzero);
      EXPECT_EQ(scan.run_bytes, want.run_bytes);
      EXPECT_EQ(std::vector<int8_t>(flagged_values.begin(),
                                    flagged_values.begin() + static_cast<ptrdiff_t>(scan.flagged)),
                expected_packed);
    }
  }
}

TEST_P(FlagPackTest, CountFlagsRefusesBitsPastTheEnd) {
  std::vector<uint8_t> map = {0xFF, 0x01};
  EXPECT_EQ(*CountFlags(map.data(), 9, "m"), 9u);
  map[1] = 0x03;
  const Result<size_t> bad = CountFlags(map.data(), 9, "m");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Status::Code::kCorruption);
}

INSTANTIATE_TEST_SUITE_P(BothIsas, FlagPackTest,
                         ::testing::Values(FlagPackIsa::kBest, FlagPackIsa::kAvx2,
                                           FlagPackIsa::kPortable),
                         [](const auto& info) {
                           return info.param == FlagPackIsa::kBest   ? "best"
                                  : info.param == FlagPackIsa::kAvx2 ? "avx2"
                                                                     : "portable";
                         });

}  // namespace
}  // namespace r2f
