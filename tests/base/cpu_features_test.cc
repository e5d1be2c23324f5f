#include "common/base/cpu_features.h"

#include <gtest/gtest.h>

namespace r2f {
namespace {

CpuFeatures Everything() {
  CpuFeatures f;
  f.avx2 = f.avxvnni = f.avx512f = f.avx512bw = f.avx512vl = f.avx512vnni = f.avx512vbmi2 = true;
  return f;
}

TEST(CpuFeaturesTest, ParsesTheCapsAndRejectsAnythingElse) {
  CpuIsaCap cap = CpuIsaCap::kPortable;
  EXPECT_TRUE(ParseCpuIsaCap(nullptr, &cap));
  EXPECT_EQ(cap, CpuIsaCap::kNative);
  EXPECT_TRUE(ParseCpuIsaCap("avx2", &cap));
  EXPECT_EQ(cap, CpuIsaCap::kAvx2);
  EXPECT_TRUE(ParseCpuIsaCap("portable", &cap));
  EXPECT_EQ(cap, CpuIsaCap::kPortable);
  EXPECT_TRUE(ParseCpuIsaCap("", &cap));
  EXPECT_EQ(cap, CpuIsaCap::kNative);
  EXPECT_TRUE(ParseCpuIsaCap("native", &cap));
  EXPECT_EQ(cap, CpuIsaCap::kNative);
  for (const char* bad : {"avx512", "AVX2", "avx2 ", "sse2"}) {
    cap = CpuIsaCap::kAvx2;
    EXPECT_FALSE(ParseCpuIsaCap(bad, &cap)) << bad;
    EXPECT_EQ(cap, CpuIsaCap::kAvx2) << bad << " changed the cap";
  }
  for (CpuIsaCap c : {CpuIsaCap::kPortable, CpuIsaCap::kAvx2, CpuIsaCap::kNative}) {
    CpuIsaCap back = CpuIsaCap::kNative;
    ASSERT_TRUE(ParseCpuIsaCap(CpuIsaCapName(c), &back));
    EXPECT_EQ(back, c);
  }
}

TEST(CpuFeaturesTest, TheAvx2CapLeavesWhatAnAvx2OnlyMachineHas) {
  const CpuFeatures all = Everything();
  EXPECT_EQ(CpuFeaturesText(CapCpuFeatures(all, CpuIsaCap::kNative)), CpuFeaturesText(all));
  EXPECT_EQ(CpuFeaturesText(CapCpuFeatures(all, CpuIsaCap::kAvx2)),
            "avx2=1 avxvnni=0 avx512f=0 avx512bw=0 avx512vl=0 avx512vnni=0 avx512vbmi2=0");
  EXPECT_EQ(CpuFeaturesText(CapCpuFeatures(all, CpuIsaCap::kPortable)),
            CpuFeaturesText(CpuFeatures{}));
  // A cap never adds what the CPU lacks.
  EXPECT_EQ(CpuFeaturesText(CapCpuFeatures(CpuFeatures{}, CpuIsaCap::kAvx2)),
            CpuFeaturesText(CpuFeatures{}));
}

TEST(CpuFeaturesTest, TheProcessUsesTheCappedFeaturesOfThisCpu) {
  EXPECT_EQ(CpuFeaturesText(UsableCpuFeatures()),
            CpuFeaturesText(CapCpuFeatures(DetectCpuFeatures(), ProcessCpuIsaCap())));
  EXPECT_FALSE(CpuModelName().empty());
}

}  // namespace
}  // namespace r2f
