// The exact method's codec (common/codec/patch_codec.h): every form decodes to y exactly when
// the decoder's base equals the vote outside the patch, the chosen form is never larger than
// raw, and damaged patches are refused.
#include "common/codec/patch_codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "common/codec/flag_pack.h"

namespace r2f {
namespace {

struct Layer {
  std::vector<int8_t> y, v, clean;  // device output, vote, the server's base (clean)
  std::vector<uint8_t> mask;
};

// n elements; `faulty` of them differ in y (the layer's own faults, the vote is right there),
// `disagree` more have a wrong vote and a faulty output, and the mask flags them.
Layer MakeLayer(size_t n, size_t faulty, size_t disagree, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Layer l;
  l.clean.resize(n);
  for (auto& x : l.clean) x = static_cast<int8_t>(rng() % 64);
  l.y = l.v = l.clean;
  l.mask.assign(n, 0);
  for (size_t k = 0; k < faulty; ++k) l.y[rng() % n] ^= 0x21;
  for (size_t k = 0; k < disagree; ++k) {
    const size_t i = rng() % n;
    l.mask[i] = 1;
    l.v[i] = static_cast<int8_t>(l.v[i] + 3);  // the vote may be wrong where flagged
    l.y[i] ^= 0x44;                            // and the device's own output differs
  }
  return l;
}

std::vector<int8_t> DecodeOn(const EncodedLayer& e, const std::vector<int8_t>& base) {
  std::vector<int8_t> out(base.size());
  EXPECT_TRUE(Decode(e, base.data(), out.data(), out.size()).ok());
  return out;
}

TEST(PatchCodecTest, EveryDensityDecodesExactlyAndIsNeverLargerThanRaw) {
  const size_t n = 20000;
  for (auto [faulty, disagree] : std::vector<std::pair<size_t, size_t>>{
           {0, 0}, {5, 0}, {0, 40}, {50, 50}, {800, 300}, {6000, 9000}}) {
    SCOPED_TRACE(std::to_string(faulty) + " faulty, " + std::to_string(disagree) + " flagged");
    const Layer l = MakeLayer(n, faulty, disagree, faulty * 31 + disagree);
    auto e = EncodeExact(l.y.data(), l.v.data(), l.mask.data(), n);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    EXPECT_LE(e->bytes.size() + e->patch.size(), n);
    EXPECT_EQ(DecodeOn(*e, l.clean), l.y) << EncodingName(e->encoding);
    if (IsIncrement(e->encoding)) {
      uint32_t flagged = 0;
      for (uint8_t m : l.mask) flagged += m;
      EXPECT_EQ(e->patched, flagged);
    }
  }
}

// The form and its bytes do not depend on the level of the codec's kernels (flag_pack.h), and
// every level decodes them.
TEST(PatchCodecTest, EveryKernelLevelEncodesTheSameBytes) {
  const size_t n = 20000;
  const FlagPackIsa before = SetFlagPackIsa(FlagPackIsa::kPortable);
  for (auto [faulty, disagree] : std::vector<std::pair<size_t, size_t>>{
           {5, 0}, {50, 50}, {800, 300}, {6000, 9000}, {9000, 2000}}) {
    SCOPED_TRACE(std::to_string(faulty) + " faulty, " + std::to_string(disagree) + " flagged");
    Layer l = MakeLayer(n, faulty, disagree, faulty * 17 + disagree);
    for (size_t i = 0; i < n / 3; ++i) l.y[i] = 0;  // a run of dead channels
    SetFlagPackIsa(FlagPackIsa::kPortable);
    auto portable = EncodeExact(l.y.data(), l.v.data(), l.mask.data(), n);
    ASSERT_TRUE(portable.ok());
    for (FlagPackIsa isa : {FlagPackIsa::kAvx2, FlagPackIsa::kBest}) {
      SetFlagPackIsa(isa);
      SCOPED_TRACE(FlagPackIsaName());
      auto e = EncodeExact(l.y.data(), l.v.data(), l.mask.data(), n);
      ASSERT_TRUE(e.ok());
      EXPECT_EQ(e->encoding, portable->encoding);
      EXPECT_EQ(e->bytes, portable->bytes);
      EXPECT_EQ(e->patch, portable->patch);
      EXPECT_EQ(DecodeOn(*portable, l.clean), l.y);
    }
    SetFlagPackIsa(FlagPackIsa::kPortable);
    EXPECT_EQ(DecodeOn(*portable, l.clean), l.y);
  }
  SetFlagPackIsa(before);
}

// raw+LZ4 is tried only where runs could make it win (ScanExact's run_bytes): a layer with dead
// channels goes raw+LZ4, one of the same size and patch density without runs does not.
TEST(PatchCodecTest, RawLz4IsChosenForDeadChannelsOnly) {
  const size_t n = 32768;
  std::mt19937_64 rng(7);
  std::vector<int8_t> y(n), v(n);
  std::vector<uint8_t> mask(n);
  for (size_t i = 0; i < n; ++i) {
    y[i] = static_cast<int8_t>(rng() | 1);  // non-zero, so the zero map cannot shrink it
    v[i] = static_cast<int8_t>(y[i] + 1);
    mask[i] = rng() % 2;
  }
  auto lively = EncodeExact(y.data(), v.data(), mask.data(), n);
  ASSERT_TRUE(lively.ok());
  EXPECT_NE(lively->encoding, Encoding::kRawLz4);
  EXPECT_EQ(DecodeOn(*lively, v), y);

  std::fill(y.begin(), y.begin() + 3 * n / 4, 0);  // three quarters of the channels dead
  ExactScan scan;
  auto dead = EncodeExact(y.data(), v.data(), mask.data(), n, &scan);
  ASSERT_TRUE(dead.ok());
  EXPECT_GE(scan.run_bytes, 3 * n / 4 - 4);
  EXPECT_EQ(dead->encoding, Encoding::kRawLz4);
  EXPECT_LT(dead->bytes.size(), BitmapBytes(n) + n / 4);  // what the zero-map form would be
  EXPECT_EQ(DecodeOn(*dead, v), y);
}

TEST(PatchCodecTest, WithoutThePatchTheWrongVotesShow) {
  const Layer l = MakeLayer(5000, 10, 25, 3);
  auto e = EncodeExact(l.y.data(), l.v.data(), l.mask.data(), l.y.size());
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(IsIncrement(e->encoding));
  EncodedLayer unpatched = *e;
  unpatched.patch.clear();
  unpatched.patched = 0;
  int wrong = 0;
  const std::vector<int8_t> out = DecodeOn(unpatched, l.clean);
  for (size_t i = 0; i < out.size(); ++i) wrong += out[i] != l.y[i];
  EXPECT_GT(wrong, 0);
}

TEST(PatchCodecTest, PatchRoundTripAndDamage) {
  std::vector<int8_t> y = {5, -7, 9, 100, -128, 0};
  std::vector<uint8_t> mask = {0, 1, 0, 1, 1, 0};
  uint32_t count = 0;
  const std::string patch = EncodePatch(y.data(), mask.data(), y.size(), &count);
  EXPECT_EQ(count, 3u);
  std::vector<int8_t> out(y.size(), 1);
  ASSERT_TRUE(ApplyPatch(patch, out.data(), out.size()).ok());
  EXPECT_EQ(out, (std::vector<int8_t>{1, -7, 1, 100, -128, 1}));
  // No flagged element: no patch at all.
  std::vector<uint8_t> none(y.size(), 0);
  EXPECT_TRUE(EncodePatch(y.data(), none.data(), y.size(), &count).empty());
  EXPECT_EQ(count, 0u);
  // A patch for another layer size, or cut short, is Corruption.
  EXPECT_FALSE(ApplyPatch(patch, out.data(), out.size() - 1).ok());
  const Status cut = ApplyPatch(patch.substr(0, patch.size() - 2), out.data(), out.size());
  EXPECT_EQ(cut.code(), Status::Code::kCorruption) << cut.ToString();
}

// Both patch forms: positions for a few flagged elements, the bitmap above an eighth. Each
// round-trips, and damage of every kind the form can show is Corruption.
TEST(PatchCodecTest, BothFormsRoundTripAndRefuseDamage) {
  const size_t n = 1003;  // not a multiple of eight: the bitmap's last byte is partial
  std::mt19937_64 rng(7);
  std::vector<int8_t> y(n);  // a third zeros, as ReLU outputs have (the bitmap form skips them)
  for (size_t i = 0; i < n; ++i) y[i] = i % 3 == 0 ? 0 : static_cast<int8_t>(rng() | 1);
  for (size_t flagged : {3, 400}) {
    SCOPED_TRACE(std::to_string(flagged) + " flagged");
    std::vector<uint8_t> mask(n, 0);
    for (size_t k = 0; k < flagged; ++k) mask[(k * 7919) % n] = 1;
    uint32_t count = 0;
    const std::string patch = EncodePatch(y.data(), mask.data(), n, &count);
    EXPECT_EQ(count, flagged);
    ASSERT_FALSE(patch.empty());
    EXPECT_EQ(patch[0], flagged > n / 8 ? 1 : 0) << "form byte";
    std::vector<int8_t> out(n, 0), expected(n, 0);
    for (size_t i = 0; i < n; ++i) expected[i] = mask[i] ? y[i] : 0;
    ASSERT_TRUE(ApplyPatch(patch, out.data(), n).ok());
    EXPECT_EQ(out, expected);
    auto refused = [&](const std::string& bad, size_t size) {
      std::vector<int8_t> scratch(size, 0);
      const Status st = ApplyPatch(bad, scratch.data(), size);
      EXPECT_EQ(st.code(), Status::Code::kCorruption) << st.ToString();
    };
    refused(patch, n - 1);                                 // another layer size
    refused(patch, n + 8);                                 // ... also past the bitmap's bytes
    refused(patch.substr(0, patch.size() - 1), n);         // cut short
    refused(patch + std::string(1, '\x05'), n);            // a stray byte
    refused(std::string(), n);                             // no form byte
    refused(std::string(1, '\x07') + patch.substr(1), n);  // unknown form
  }
  // A bitmap that flags elements past the end of the layer (n % 8 == 3: bits 3-7 of its last
  // byte). The form byte and varint(1003) take three bytes.
  std::vector<uint8_t> all(n, 1);
  uint32_t count = 0;
  std::string patch = EncodePatch(y.data(), all.data(), n, &count);
  ASSERT_EQ(patch[0], 1);
  patch[3 + (n + 7) / 8 - 1] = static_cast<char>(patch[3 + (n + 7) / 8 - 1] | 0xF8);
  std::vector<int8_t> out(n);
  const Status st = ApplyPatch(patch, out.data(), n);
  EXPECT_EQ(st.code(), Status::Code::kCorruption);
  EXPECT_NE(st.message().find("past"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace r2f
