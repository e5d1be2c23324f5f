// Fuzz target: common/codec/increment_codec.h Decode, with and without a base.
//
// Input: byte 0 the encoding (low 3 bits: 0-4 known, 5-7 unknown), byte 1 flags (bit 0: no base,
// bit 1: decode in place into the base, bit 2: a layer claiming one element more than expected,
// bit 3: the rest is an exact-method patch, patch_codec.h, not a layer), bytes 2-3 the element
// count n (little-endian), the rest the layer's bytes.
// Checked: nothing crashes or touches memory outside the n-element buffers (ASan); an increment
// without a base is refused (unless empty); a raw layer decodes to its own bytes; any decoded layer
// survives a re-encode / decode round trip in every encoding; an applied patch survives
// EncodeExact's round trip with its positions as the mask.
#include <cstring>
#include <vector>

#include "common/codec/increment_codec.h"
#include "common/codec/patch_codec.h"
#include "tests/fuzz/fuzz_target.h"

namespace {

using r2f::EncodedLayer;
using r2f::Encoding;

// Re-encodes `out` (against `base` for increments) in every form and checks it decodes back.
void CheckRoundTrip(const std::vector<int8_t>& out, const std::vector<int8_t>& base) {
  const size_t n = out.size();
  std::vector<int8_t> again(n);
  for (bool lz4 : {false, true}) {
    auto raw = r2f::EncodeRaw(out.data(), n, lz4);
    R2F_FUZZ_CHECK(raw.ok());
    R2F_FUZZ_CHECK(r2f::Decode(*raw, nullptr, again.data(), n).ok());
    R2F_FUZZ_CHECK(again == out);
  }
  auto zero_map = r2f::EncodeRawZeroMap(out.data(), n);
  R2F_FUZZ_CHECK(zero_map.ok());
  R2F_FUZZ_CHECK(r2f::Decode(*zero_map, nullptr, again.data(), n).ok());
  R2F_FUZZ_CHECK(again == out);
  for (auto format : {r2f::IncrementFormat::kLz4, r2f::IncrementFormat::kSparse}) {
    auto inc = r2f::EncodeIncrement(out.data(), base.data(), n, format);
    R2F_FUZZ_CHECK(inc.ok());
    R2F_FUZZ_CHECK(r2f::Decode(*inc, base.data(), again.data(), n).ok());
    R2F_FUZZ_CHECK(again == out);
  }
}

// The rest as a patch over n elements of 0x55; where it applies, the patched layer with the
// patch's positions as the mask goes through EncodeExact and decodes back exactly.
void CheckPatch(const std::string& patch, size_t n) {
  std::vector<int8_t> out(n, 0x55), base(n);
  for (size_t i = 0; i < n; ++i) base[i] = static_cast<int8_t>(i * 37 + 11);
  if (!r2f::ApplyPatch(patch, out.data(), n).ok()) return;
  std::vector<int8_t> marked(n, 0x55);  // the patch again, over another background
  for (auto& x : marked) x = 0x2A;
  R2F_FUZZ_CHECK(r2f::ApplyPatch(patch, marked.data(), n).ok());
  std::vector<uint8_t> mask(n);
  for (size_t i = 0; i < n; ++i) mask[i] = out[i] != 0x55 || marked[i] != 0x2A;
  auto e = r2f::EncodeExact(out.data(), base.data(), mask.data(), n);
  R2F_FUZZ_CHECK(e.ok());
  std::vector<int8_t> again(n);
  R2F_FUZZ_CHECK(r2f::Decode(*e, base.data(), again.data(), n).ok());
  R2F_FUZZ_CHECK(again == out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  const auto encoding = static_cast<Encoding>(data[0] & 7);
  const bool with_base = (data[1] & 1) == 0;
  const bool in_place = (data[1] & 2) != 0 && with_base;
  const bool wrong_size = (data[1] & 4) != 0;
  const size_t n = data[2] | static_cast<size_t>(data[3]) << 8;
  if ((data[1] & 8) != 0) {
    CheckPatch(std::string(reinterpret_cast<const char*>(data + 4), size - 4), n);
    return 0;
  }
  EncodedLayer layer;
  layer.encoding = encoding;
  layer.elements = static_cast<uint32_t>(n + (wrong_size ? 1 : 0));
  layer.bytes.assign(reinterpret_cast<const char*>(data + 4), size - 4);

  // Exactly n elements each, so that ASan sees any access past them.
  std::vector<int8_t> base(n);
  for (size_t i = 0; i < n; ++i) base[i] = static_cast<int8_t>(i * 37 + 11);
  std::vector<int8_t> out(n, 0x55);
  int8_t* target = in_place ? base.data() : out.data();
  const std::vector<int8_t> original_base = base;
  r2f::Status st = r2f::Decode(layer, with_base ? base.data() : nullptr, target, n);
  // (An empty layer needs no base: it decodes to nothing.)
  if (!with_base && r2f::IsIncrement(encoding) && !wrong_size && n > 0) {
    R2F_FUZZ_CHECK(!st.ok());
  }
  if (wrong_size) R2F_FUZZ_CHECK(!st.ok());
  if (!st.ok()) return 0;
  std::vector<int8_t> decoded(target, target + n);
  if (encoding == Encoding::kRaw) {
    R2F_FUZZ_CHECK(layer.bytes.size() == n);
    R2F_FUZZ_CHECK(n == 0 || std::memcmp(decoded.data(), layer.bytes.data(), n) == 0);
  }
  CheckRoundTrip(decoded, original_base);
  return 0;
}
