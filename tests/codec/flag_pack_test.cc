// common/codec/flag_pack.h: every function gives what a plain loop gives, at each of the three
// levels (the widest kernels this CPU has, AVX2, portable), at lengths around the 8-, 16-, 32-
// and 64-element steps of the kernels and at every flag density the exact method sees; and no
// kernel reads or writes a byte outside its buffers (each placed against an unmapped page).
#include "common/codec/flag_pack.h"

#include "common/base/cpu_features.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace r2f {
namespace {

struct Data {
  std::vector<int8_t> y, v;
  std::vector<uint8_t> flags;
};

// Half of y zero; a quarter of the rest repeats the element before it, so that runs of equal
// non-zero values occur too (ExactScan::run_bytes).
Data MakeData(size_t n, double density, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution flagged(density), zero(0.5), repeat(0.25);
  Data d;
  for (size_t i = 0; i < n; ++i) {
    int8_t y = zero(rng) ? 0 : static_cast<int8_t>(rng() | 1);
    if (!d.y.empty() && d.y.back() != 0 && repeat(rng)) y = d.y.back();
    d.y.push_back(y);
    d.v.push_back(flagged(rng) ? static_cast<int8_t>(rng()) : d.y.back());
    d.flags.push_back(flagged(rng) ? static_cast<uint8_t>(1 + rng() % 255) : 0);
  }
  return d;
}

bool Bit(const std::vector<uint8_t>& map, size_t i) { return ((map[i / 8] >> (i % 8)) & 1) != 0; }

// The name FlagPackIsaName() must give at `isa` in this process (the CPU's features, capped by
// R2F_CPU_ISA), or nullptr if it lacks that level.
const char* ExpectedKernel(FlagPackIsa isa) {
  const CpuFeatures& cpu = UsableCpuFeatures();
  const bool vbmi2 = cpu.avx512bw && cpu.avx512vbmi2;
#if defined(__x86_64__) || defined(__i386__)
  const bool avx2 = cpu.avx2 && __builtin_cpu_supports("popcnt");
#else
  const bool avx2 = false;
#endif
  switch (isa) {
    case FlagPackIsa::kBest:
      return vbmi2 ? "avx512_vbmi2" : avx2 ? "avx2" : "portable";
    case FlagPackIsa::kAvx2:
      return avx2 ? "avx2" : nullptr;
    case FlagPackIsa::kPortable:
      return "portable";
  }
  return nullptr;
}

class FlagPackTest : public ::testing::TestWithParam<FlagPackIsa> {
 protected:
  void SetUp() override {
    before_ = SetFlagPackIsa(GetParam());
    const char* expected = ExpectedKernel(GetParam());
    if (expected == nullptr) GTEST_SKIP() << "this CPU has no such level";
    // The level asked for is the one that runs (a wrong dispatch would test another kernel).
    ASSERT_STREQ(FlagPackIsaName(), expected);
  }
  void TearDown() override { SetFlagPackIsa(before_); }

 private:
  FlagPackIsa before_ = FlagPackIsa::kBest;
};

// `size` bytes right before an unmapped page (kAfter), or right after one (kBefore): a read or
// write one byte outside them faults.
class GuardedBuffer {
 public:
  enum Guard { kAfter, kBefore };
  GuardedBuffer(size_t size, Guard guard) {
    const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t pages = (size + page - 1) / page + 1;
    length_ = pages * page;
    void* base = mmap(nullptr, length_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) std::abort();
    base_ = static_cast<uint8_t*>(base);
    if (guard == kAfter) {
      mprotect(base_ + length_ - page, page, PROT_NONE);
      data_ = base_ + length_ - page - size;
    } else {
      mprotect(base_, page, PROT_NONE);
      data_ = base_ + page;
    }
  }
  GuardedBuffer(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(const GuardedBuffer&) = delete;
  ~GuardedBuffer() { munmap(base_, length_); }
  template <typename T>
  T* as() {
    return reinterpret_cast<T*>(data_);
  }

 private:
  uint8_t* base_ = nullptr;
  uint8_t* data_ = nullptr;
  size_t length_ = 0;
};

template <typename T>
void Fill(GuardedBuffer& b, const std::vector<T>& v) {
  if (!v.empty()) std::memcpy(b.as<T>(), v.data(), v.size() * sizeof(T));
}

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

// The varints of the gaps between flagged positions, and the differences at them, as a plain
// loop writes them, alone and beside the differences: at the densities above, and with gaps of one,
// two and three varint bytes.
TEST_P(FlagPackTest, GapsAndDifferencesEqualThePlainLoop) {
  std::vector<std::pair<size_t, double>> cases;
  for (size_t n : {0, 1, 7, 8, 63, 64, 65, 127, 128, 1000, 4099}) {
    for (double density : {0.0, 0.03, 0.4, 1.0}) cases.emplace_back(n, density);
  }
  cases.emplace_back(70000, 0.0003);  // gaps past 127 and past 16383
  cases.emplace_back(70000, 0.00002);
  for (const auto& [n, density] : cases) {
    SCOPED_TRACE("n " + std::to_string(n) + ", density " + std::to_string(density));
    const Data d = MakeData(n, density, n * 13 + static_cast<uint64_t>(density * 1e5));
    std::vector<uint8_t> differ(BitmapBytes(n));
    const size_t count = DifferBitmap(d.y.data(), d.v.data(), n, differ.data());
    std::vector<uint8_t> want_gaps, want_values;
    size_t next = 0;
    for (size_t i = 0; i < n; ++i) {
      if (d.y[i] == d.v[i]) continue;
      for (size_t gap = i - next;; gap >>= 7) {
        want_gaps.push_back(static_cast<uint8_t>((gap & 0x7F) | (gap >= 0x80 ? 0x80 : 0)));
        if (gap < 0x80) break;
      }
      want_values.push_back(static_cast<uint8_t>(d.y[i] - d.v[i]));
      next = i + 1;
    }
    std::vector<uint8_t> gaps(MaxGapBytes(count, n) + kPackSlack, 0xEE);
    const size_t gap_bytes = PackGapVarints(differ.data(), count, n, gaps.data());
    ASSERT_LE(gap_bytes, MaxGapBytes(count, n));
    EXPECT_EQ(std::vector<uint8_t>(gaps.begin(), gaps.begin() + static_cast<ptrdiff_t>(gap_bytes)),
              want_gaps);
    std::vector<uint8_t> gaps_too(MaxGapBytes(count, n) + kPackSlack, 0xEE),
        values(count + kPackSlack, 0xEE);
    EXPECT_EQ(PackGapsAndDifferences(differ.data(), count, n, d.y.data(), d.v.data(),
                                     gaps_too.data(), values.data()),
              gap_bytes);
    EXPECT_EQ(std::vector<uint8_t>(gaps_too.begin(),
                                   gaps_too.begin() + static_cast<ptrdiff_t>(gap_bytes)),
              want_gaps);
    EXPECT_EQ(std::vector<uint8_t>(values.begin(), values.begin() + static_cast<ptrdiff_t>(count)),
              want_values);
  }
}

TEST_P(FlagPackTest, NoKernelTouchesABytePastItsBuffers) {
  for (size_t n = 0; n < 200; n += (n < 70 ? 1 : 13)) {
    for (double density : {0.03, 0.4, 1.0}) {
      SCOPED_TRACE("n " + std::to_string(n) + ", density " + std::to_string(density));
      const Data d = MakeData(n, density, n * 11 + static_cast<uint64_t>(density * 100));
      const size_t map_bytes = BitmapBytes(n);
      for (auto y_guard : {GuardedBuffer::kBefore, GuardedBuffer::kAfter}) {
        // ScanExact: y with its first byte after a hole (no y[-1]) or its last before one.
        GuardedBuffer y(n, y_guard), v(n, GuardedBuffer::kAfter), flags(n, GuardedBuffer::kAfter);
        GuardedBuffer differ(map_bytes, GuardedBuffer::kAfter),
            flag_map(map_bytes, GuardedBuffer::kAfter),
            values(n + kPackSlack, GuardedBuffer::kAfter);
        Fill(y, d.y);
        Fill(v, d.v);
        Fill(flags, d.flags);
        const ExactScan scan =
            ScanExact(y.as<int8_t>(), v.as<int8_t>(), flags.as<uint8_t>(), n, differ.as<uint8_t>(),
                      flag_map.as<uint8_t>(), values.as<int8_t>());
        size_t flagged = 0;
        for (uint8_t f : d.flags) flagged += f != 0;
        EXPECT_EQ(scan.flagged, flagged);
        EXPECT_EQ(
            DifferBitmap(y.as<int8_t>(), v.as<int8_t>(), n, differ.as<uint8_t>()),
            scan.differ + [&] {
              size_t flagged_differ = 0;
              for (size_t i = 0; i < n; ++i) flagged_differ += d.flags[i] && d.y[i] != d.v[i];
              return flagged_differ;
            }());
        // The sparse increment's values: only the flagged bytes of y and v are read.
        const size_t differing = *CountFlags(differ.as<uint8_t>(), n, "differ");
        GuardedBuffer gaps(MaxGapBytes(differing, n) + kPackSlack, GuardedBuffer::kAfter),
            differences(differing + kPackSlack, GuardedBuffer::kAfter);
        PackGapsAndDifferences(differ.as<uint8_t>(), differing, n, y.as<int8_t>(), v.as<int8_t>(),
                               gaps.as<uint8_t>(), differences.as<uint8_t>());
        // PackFlagged, then ExpandFlagged and ScatterFlagged from exactly the packed values (and
        // the one readable byte after them that their contract asks for).
        GuardedBuffer map(map_bytes, GuardedBuffer::kAfter);
        const size_t k = PackFlagged(y.as<int8_t>(), flags.as<uint8_t>(), n, map.as<uint8_t>(),
                                     values.as<int8_t>());
        ASSERT_EQ(k, flagged);
        GuardedBuffer packed(k + 1, GuardedBuffer::kAfter);
        std::memcpy(packed.as<int8_t>(), values.as<int8_t>(), k);
        packed.as<int8_t>()[k] = 0;
        GuardedBuffer out(n, GuardedBuffer::kAfter);
        ExpandFlagged(map.as<uint8_t>(), packed.as<int8_t>(), k, n, out.as<int8_t>());
        for (size_t i = 0; i < n; ++i) {
          ASSERT_EQ(out.as<int8_t>()[i], d.flags[i] != 0 ? d.y[i] : 0) << "expand " << i;
        }
        Fill(out, d.v);
        ScatterFlagged(map.as<uint8_t>(), packed.as<int8_t>(), k, n, out.as<int8_t>());
        for (size_t i = 0; i < n; ++i) {
          ASSERT_EQ(out.as<int8_t>()[i], d.flags[i] != 0 ? d.y[i] : d.v[i]) << "scatter " << i;
        }
      }
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

INSTANTIATE_TEST_SUITE_P(EveryLevel, FlagPackTest,
                         ::testing::Values(FlagPackIsa::kBest, FlagPackIsa::kAvx2,
                                           FlagPackIsa::kPortable),
                         [](const auto& info) {
                           return info.param == FlagPackIsa::kBest   ? "best"
                                  : info.param == FlagPackIsa::kAvx2 ? "avx2"
                                                                     : "portable";
                         });

TEST(FlagPackCapTest, Avx2CapRunsAtMostTheAvx2Kernels) {
  // A fresh process (the cap is read once per process), as in CpuIsaCapTest (gemm_test.cc).
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  setenv("R2F_CPU_ISA", "avx2", 1);
  unsetenv("R2F_CODEC_ISA");
  EXPECT_EXIT(
      {
        const std::string name = FlagPackIsaName();
        std::fprintf(stderr, "codec kernel %s\n", name.c_str());
        std::exit(name == "avx2" || name == "portable" ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
  unsetenv("R2F_CPU_ISA");
}

}  // namespace
}  // namespace r2f
