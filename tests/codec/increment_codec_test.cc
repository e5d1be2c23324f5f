#include "common/codec/increment_codec.h"

#include <gtest/gtest.h>
#include <lz4.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

namespace r2f {
namespace {

EncodedLayer MakeEncoded(Encoding encoding, uint32_t elements, std::string bytes) {
  EncodedLayer layer;
  layer.encoding = encoding;
  layer.elements = elements;
  layer.bytes = std::move(bytes);
  return layer;
}

// A reference v of full-range random int8 values and a faulty y that differs from it in
// exactly round(density * n) random positions (by a random non-zero amount).
struct Pair {
  std::vector<int8_t> y, v;
  size_t differences = 0;
};

Pair MakePair(size_t n, double density, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(-128, 127);
  std::uniform_int_distribution<int> delta(1, 255);
  Pair p;
  p.v.resize(n);
  for (auto& x : p.v) x = static_cast<int8_t>(byte(rng));
  p.y = p.v;
  size_t k = static_cast<size_t>(std::llround(density * static_cast<double>(n)));
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  for (size_t i = 0; i < k; ++i) {  // partial Fisher-Yates: k distinct positions
    std::uniform_int_distribution<size_t> pick(i, n - 1);
    std::swap(idx[i], idx[pick(rng)]);
    size_t pos = idx[i];
    p.y[pos] = static_cast<int8_t>(static_cast<uint8_t>(p.v[pos]) + delta(rng));
  }
  p.differences = k;
  return p;
}

Result<EncodedLayer> EncodeAs(Encoding e, const Pair& p) {
  switch (e) {
    case Encoding::kRaw:
      return EncodeRaw(p.y.data(), p.y.size(), false);
    case Encoding::kRawLz4:
      return EncodeRaw(p.y.data(), p.y.size(), true);
    case Encoding::kIncrementLz4:
      return EncodeIncrement(p.y.data(), p.v.data(), p.y.size(), IncrementFormat::kLz4);
    case Encoding::kIncrementSparse:
      return EncodeIncrement(p.y.data(), p.v.data(), p.y.size(), IncrementFormat::kSparse);
    case Encoding::kRawZeroMap:
      return EncodeRawZeroMap(p.y.data(), p.y.size());
  }
  return Status::Internal("bad encoding");
}

constexpr Encoding kAllEncodings[] = {Encoding::kRaw, Encoding::kRawLz4, Encoding::kIncrementLz4,
                                      Encoding::kIncrementSparse, Encoding::kRawZeroMap};

void ExpectRoundTrip(const Pair& p, Encoding e) {
  Result<EncodedLayer> enc = EncodeAs(e, p);
  ASSERT_TRUE(enc.ok()) << enc.status().ToString();
  EXPECT_EQ(enc->encoding, e);
  EXPECT_EQ(enc->elements, p.y.size());
  std::vector<int8_t> out(p.y.size(), 0x55);
  const int8_t* base = IsIncrement(e) ? p.v.data() : nullptr;
  Status s = Decode(*enc, base, out.data(), out.size());
  ASSERT_TRUE(s.ok()) << EncodingName(e) << ": " << s.ToString();
  EXPECT_TRUE(out == p.y) << EncodingName(e) << " n=" << p.y.size();
}

TEST(IncrementCodecTest, RoundTripsAcrossSizesAndDensities) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{2}, size_t{7}, size_t{8}, size_t{9}, size_t{255},
                   size_t{1001}, size_t{65537}}) {
    for (double density : {0.0, 1e-4, 0.01, 0.5, 1.0}) {
      Pair p = MakePair(n, density, static_cast<uint32_t>(n * 31 + density * 1e6));
      for (Encoding e : kAllEncodings) {
        SCOPED_TRACE(testing::Message() << "n=" << n << " density=" << density);
        ExpectRoundTrip(p, e);
      }
    }
  }
}

TEST(IncrementCodecTest, RoundTripsOneMillionElements) {
  const size_t n = 1 << 20;
  for (double density : {0.0, 1e-4, 1e-3, 0.01, 0.5, 1.0}) {
    SCOPED_TRACE(density);
    Pair p = MakePair(n, density, 99);
    EXPECT_EQ(CountDifferences(p.y.data(), p.v.data(), n), p.differences);
    for (Encoding e : kAllEncodings) ExpectRoundTrip(p, e);
  }
}

TEST(IncrementCodecTest, ExtremeValuesWrapExactly) {
  // 127 - (-128) = 255 and -128 - 127 = -255 do not fit int8; modulo 256 they are 0xFF / 0x01.
  Pair p;
  for (int i = 0; i < 64; ++i) {
    p.y.push_back(i % 2 ? 127 : -128);
    p.v.push_back(i % 2 ? -128 : 127);
    p.y.push_back(i % 3 ? -128 : 0);
    p.v.push_back(i % 3 ? -128 : -1);
  }
  for (Encoding e : kAllEncodings) ExpectRoundTrip(p, e);
}

TEST(IncrementCodecTest, DecodesInPlaceOverTheBase) {
  Pair p = MakePair(5000, 0.03, 5);
  for (Encoding e : {Encoding::kIncrementLz4, Encoding::kIncrementSparse}) {
    Result<EncodedLayer> enc = EncodeAs(e, p);
    ASSERT_TRUE(enc.ok());
    std::vector<int8_t> buf = p.v;
    ASSERT_TRUE(Decode(*enc, buf.data(), buf.data(), buf.size()).ok());
    EXPECT_TRUE(buf == p.y) << EncodingName(e);
  }
}

TEST(IncrementCodecTest, AppliesIncrementToADifferentBase) {
  // The server adds the increment to its recomputed g, not to v: out = g + (y - v) mod 256.
  Pair p = MakePair(3000, 0.1, 8);
  Pair g = MakePair(3000, 0.0, 9);
  for (Encoding e : {Encoding::kIncrementLz4, Encoding::kIncrementSparse}) {
    Result<EncodedLayer> enc = EncodeAs(e, p);
    ASSERT_TRUE(enc.ok());
    std::vector<int8_t> out(3000);
    ASSERT_TRUE(Decode(*enc, g.v.data(), out.data(), out.size()).ok());
    for (size_t i = 0; i < out.size(); ++i) {
      uint8_t expected =
          static_cast<uint8_t>(static_cast<uint8_t>(g.v[i]) + static_cast<uint8_t>(p.y[i]) -
                               static_cast<uint8_t>(p.v[i]));
      ASSERT_EQ(static_cast<uint8_t>(out[i]), expected) << i;
    }
  }
}

TEST(IncrementCodecTest, SimilarityCountsIdenticalElements) {
  Pair p = MakePair(10000, 0.25, 1);
  EXPECT_EQ(CountDifferences(p.y.data(), p.v.data(), 10000), 2500u);
  EXPECT_DOUBLE_EQ(Similarity(p.y.data(), p.v.data(), 10000), 0.75);
  EXPECT_DOUBLE_EQ(Similarity(p.v.data(), p.v.data(), 10000), 1.0);
  EXPECT_DOUBLE_EQ(Similarity(nullptr, nullptr, 0), 1.0);
}

TEST(IncrementCodecTest, SmallestPicksTheSmallerEncoding) {
  for (double density : {0.0, 1e-3, 0.05, 0.3, 1.0}) {
    Pair p = MakePair(20000, density, 21);
    Result<EncodedLayer> dense = EncodeAs(Encoding::kIncrementLz4, p);
    Result<EncodedLayer> sparse = EncodeAs(Encoding::kIncrementSparse, p);
    Result<EncodedLayer> smallest =
        EncodeIncrement(p.y.data(), p.v.data(), p.y.size(), IncrementFormat::kSmallest);
    ASSERT_TRUE(dense.ok() && sparse.ok() && smallest.ok());
    EXPECT_EQ(smallest->bytes.size(), std::min(dense->bytes.size(), sparse->bytes.size()))
        << density;
    for (bool raw_lz4 : {false, true}) {
      Result<EncodedLayer> adaptive = EncodeSmallest(p.y.data(), p.v.data(), p.y.size(), raw_lz4);
      Result<EncodedLayer> raw = EncodeRaw(p.y.data(), p.y.size(), raw_lz4);
      ASSERT_TRUE(adaptive.ok() && raw.ok());
      EXPECT_EQ(adaptive->bytes.size(), std::min(raw->bytes.size(), smallest->bytes.size()));
      std::vector<int8_t> out(p.y.size());
      ASSERT_TRUE(Decode(*adaptive, p.v.data(), out.data(), out.size()).ok());
      EXPECT_TRUE(out == p.y);
    }
  }
}

TEST(IncrementCodecTest, SparseBeatsDenseLz4AtLowDensity) {
  const size_t n = 1 << 20;
  Pair p = MakePair(n, 1e-3, 77);
  Result<EncodedLayer> dense = EncodeAs(Encoding::kIncrementLz4, p);
  Result<EncodedLayer> sparse = EncodeAs(Encoding::kIncrementSparse, p);
  ASSERT_TRUE(dense.ok() && sparse.ok());
  // ~1049 non-zeros: the sparse stream needs ~2 bytes each; dense LZ4 pays a literal/match
  // sequence per non-zero plus the long zero matches. Measured ratio ~3.5 (see docs).
  EXPECT_LT(sparse->bytes.size() * 2, dense->bytes.size())
      << "sparse " << sparse->bytes.size() << " dense " << dense->bytes.size();
  EXPECT_LT(sparse->bytes.size(), 3 * p.differences);
  EXPECT_LT(dense->bytes.size(), n / 50);  // both are far below the raw n bytes
}

// ---- Corrupt input -------------------------------------------------------------------------

std::string Varint(uint32_t v) {
  std::string s;
  while (v >= 0x80) {
    s.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  s.push_back(static_cast<char>(v));
  return s;
}

std::string Lz4(const std::string& inner) {
  std::string out(LZ4_compressBound(static_cast<int>(inner.size())), '\0');
  int got = LZ4_compress_default(inner.data(), out.data(), static_cast<int>(inner.size()),
                                 static_cast<int>(out.size()));
  out.resize(got > 0 ? got : 0);
  return out;
}

// A kIncrementSparse layer of n elements whose inner stream is varint(stream_n) + `body`
// (stream_n defaults to n), declared as `declared` bytes (default: its true size).
EncodedLayer SparseLayer(uint32_t n, const std::string& body, int64_t declared = -1,
                         int64_t stream_n = -1) {
  std::string inner = Varint(stream_n < 0 ? n : static_cast<uint32_t>(stream_n)) + body;
  EncodedLayer layer;
  layer.encoding = Encoding::kIncrementSparse;
  layer.elements = n;
  layer.bytes =
      Varint(declared < 0 ? static_cast<uint32_t>(inner.size()) : static_cast<uint32_t>(declared)) +
      Lz4(inner);
  return layer;
}

Status DecodeN(const EncodedLayer& layer, size_t n) {
  std::vector<int8_t> base(n, 3), out(n);
  return Decode(layer, base.data(), out.data(), n);
}

TEST(IncrementCodecTest, HandCraftedSparseStreams) {
  // Valid: two non-zeros at positions 2 and 5 of 8.
  std::string ok = Varint(2) + Varint(2) + Varint(2) + "\x07\x09";
  {
    std::vector<int8_t> base(8, 3), out(8);
    ASSERT_TRUE(Decode(SparseLayer(8, ok), base.data(), out.data(), 8).ok());
    EXPECT_EQ(out, (std::vector<int8_t>{3, 3, 10, 3, 3, 12, 3, 3}));
  }
  // Nine non-zeros of 20: eight one-byte gaps read at once, then one more.
  const std::string nine = Varint(9) + std::string("\x00\x01\x00\x02\x00\x00\x03\x00\x01", 9) +
                           "\x01\x02\x03\x04\x05\x06\x07\x08\x09";
  {
    std::vector<int8_t> base(20, 0), out(20);
    ASSERT_TRUE(Decode(SparseLayer(20, nine), base.data(), out.data(), 20).ok());
    EXPECT_EQ(out,
              (std::vector<int8_t>{1, 0, 2, 3, 0, 0, 4, 5, 6, 0, 0, 0, 7, 8, 0, 9, 0, 0, 0, 0}));
  }
  // Of eight one-byte gaps, the sixth position is the first out of range: named, not the last.
  {
    const std::string bad = Varint(9) + std::string("\x00\x00\x00\x05\x00\x00\x00\x00\x00", 9) +
                            "\x01\x01\x01\x01\x01\x01\x01\x01\x01";
    std::vector<int8_t> base(10, 0), out(10);
    const Status s = Decode(SparseLayer(10, bad), base.data(), out.data(), 10);
    EXPECT_EQ(s.code(), Status::Code::kCorruption) << s.ToString();
    EXPECT_NE(s.message().find("position 10 "), std::string::npos) << s.ToString();
  }
  struct Case {
    const char* what;
    EncodedLayer layer;
  };
  const Case cases[] = {
      {"eighth of eight one-byte positions out of range",
       SparseLayer(8, Varint(8) + std::string("\x00\x00\x00\x00\x00\x00\x00\x01", 8) +
                          std::string(8, '\x01'))},
      {"zero value among eight",
       SparseLayer(16, Varint(8) + std::string(8, '\0') + "\x01\x01\x01\x00\x01\x01\x01\x01")},
      {"position out of range", SparseLayer(8, Varint(1) + Varint(8) + "\x01")},
      {"second position out of range",
       SparseLayer(8, Varint(2) + Varint(6) + Varint(1) + "\x01\x01")},
      {"nnz above n",
       SparseLayer(2, Varint(3) + Varint(0) + Varint(0) + Varint(0) + "\x01\x01\x01")},
      {"nnz above stream", SparseLayer(8, Varint(5) + "\x01")},
      {"missing gap", SparseLayer(8, Varint(2) + Varint(1) + "\x01\x01")},
      {"stray byte", SparseLayer(8, Varint(1) + Varint(1) + Varint(1) + "\x01")},
      {"zero value", SparseLayer(8, Varint(1) + Varint(1) + std::string(1, '\0'))},
      {"gap varint over 32 bits", SparseLayer(8, Varint(1) + "\xff\xff\xff\xff\x7f" + "\x01")},
      {"truncated gap varint", SparseLayer(8, Varint(1) + "\x80" + "\x01")},
      {"stream for another size", SparseLayer(8, ok, -1, 9)},
      {"stream for another size (smaller)", SparseLayer(8, ok, -1, 7)},
      {"no non-zero count", SparseLayer(8, "")},
      {"empty stream", MakeEncoded(Encoding::kIncrementSparse, 8, Varint(1) + Lz4(std::string()))},
      {"declared size too large", SparseLayer(8, ok, static_cast<int64_t>(ok.size()) + 2)},
      {"declared size too small", SparseLayer(8, ok, static_cast<int64_t>(ok.size()))},
      {"declared size impossible", SparseLayer(8, ok, 1000000)},
      {"size varint truncated", MakeEncoded(Encoding::kIncrementSparse, 8, "\x80")},
      {"no bytes", MakeEncoded(Encoding::kIncrementSparse, 8, "")},
      {"size but no block", MakeEncoded(Encoding::kIncrementSparse, 8, Varint(5))},
  };
  for (const Case& c : cases) {
    Status s = DecodeN(c.layer, c.layer.elements);
    EXPECT_EQ(s.code(), Status::Code::kCorruption) << c.what << ": " << s.ToString();
    EXPECT_FALSE(s.message().empty());
  }
}

TEST(IncrementCodecTest, RejectsMismatchesAndMisuse) {
  Pair p = MakePair(100, 0.1, 4);
  std::vector<int8_t> out(101);
  for (Encoding e : kAllEncodings) {
    Result<EncodedLayer> enc = EncodeAs(e, p);
    ASSERT_TRUE(enc.ok());
    // Element count differs from what the caller expects (both ways).
    Status s = Decode(*enc, p.v.data(), out.data(), 99);
    EXPECT_EQ(s.code(), Status::Code::kCorruption) << s.ToString();
    EXPECT_NE(s.message().find("expected 99"), std::string::npos) << s.ToString();
    EncodedLayer lying = *enc;
    lying.elements = 101;
    std::vector<int8_t> base(101, 0);
    EXPECT_FALSE(Decode(lying, base.data(), out.data(), 101).ok()) << EncodingName(e);
  }
  Result<EncodedLayer> inc = EncodeAs(Encoding::kIncrementSparse, p);
  ASSERT_TRUE(inc.ok());
  Status no_base = Decode(*inc, nullptr, out.data(), 100);
  EXPECT_EQ(no_base.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(Decode(*inc, p.v.data(), nullptr, 100).code(), Status::Code::kInvalidArgument);

  EncodedLayer unknown = *inc;
  unknown.encoding = static_cast<Encoding>(9);
  EXPECT_EQ(Decode(unknown, p.v.data(), out.data(), 100).code(), Status::Code::kCorruption);

  EncodedLayer empty_with_bytes = MakeEncoded(Encoding::kRaw, 0, "x");
  EXPECT_EQ(Decode(empty_with_bytes, nullptr, out.data(), 0).code(), Status::Code::kCorruption);
  EXPECT_TRUE(Decode(MakeEncoded(Encoding::kIncrementLz4, 0, ""), nullptr, nullptr, 0).ok());

  // Raw LZ4 block that expands to the wrong size, and garbage.
  std::string block = Lz4(std::string(50, 'a'));
  EXPECT_EQ(DecodeN(MakeEncoded(Encoding::kRawLz4, 100, block), 100).code(),
            Status::Code::kCorruption);
  EXPECT_EQ(DecodeN(MakeEncoded(Encoding::kIncrementLz4, 100, "\xff\xff\xff"), 100).code(),
            Status::Code::kCorruption);

  // Oversized layers are refused before touching memory.
  EXPECT_EQ(EncodeRaw(nullptr, kMaxLayerElements + 1).status().code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(EncodeIncrement(nullptr, nullptr, kMaxLayerElements + 1, IncrementFormat::kSparse)
                .status()
                .code(),
            Status::Code::kInvalidArgument);
}

// Every prefix of a valid encoding must be rejected.
TEST(IncrementCodecTest, EveryTruncationIsRejected) {
  Pair p = MakePair(400, 0.05, 12);
  for (Encoding e : kAllEncodings) {
    Result<EncodedLayer> enc = EncodeAs(e, p);
    ASSERT_TRUE(enc.ok());
    for (size_t len = 0; len < enc->bytes.size(); ++len) {
      EncodedLayer cut = *enc;
      cut.bytes.resize(len);
      std::vector<int8_t> out(400);
      Status s = Decode(cut, p.v.data(), out.data(), out.size());
      EXPECT_EQ(s.code(), Status::Code::kCorruption)
          << EncodingName(e) << " cut at " << len << "/" << enc->bytes.size();
    }
  }
}

// Random damage: the decoder may accept a damaged payload (it has no checksum; the envelope
// does) but must never crash or touch memory outside its buffers. Run under ASan to prove the
// second half (docs/link_and_codec.md).
TEST(IncrementCodecTest, RandomByteFlipsNeverCrash) {
  std::mt19937 rng(2024);
  for (double density : {0.0, 0.02, 0.5}) {
    Pair p = MakePair(777, density, 6);
    for (Encoding e : kAllEncodings) {
      Result<EncodedLayer> enc = EncodeAs(e, p);
      ASSERT_TRUE(enc.ok());
      if (enc->bytes.empty()) continue;
      int rejected = 0;
      for (int trial = 0; trial < 300; ++trial) {
        EncodedLayer bad = *enc;
        int flips = 1 + trial % 4;
        for (int f = 0; f < flips; ++f) {
          size_t at = std::uniform_int_distribution<size_t>(0, bad.bytes.size() - 1)(rng);
          bad.bytes[at] = static_cast<char>(bad.bytes[at] ^ (1 + rng() % 255));
        }
        std::vector<int8_t> out(777);
        Status s = Decode(bad, p.v.data(), out.data(), out.size());
        if (!s.ok()) {
          ++rejected;
          EXPECT_EQ(s.code(), Status::Code::kCorruption) << s.ToString();
        }
      }
      // Raw bytes carry no redundancy; every compressed form must notice at least some damage.
      if (e != Encoding::kRaw) {
        EXPECT_GT(rejected, 0) << EncodingName(e);
      }
    }
  }
}

}  // namespace
}  // namespace r2f
