// Payload codec for one layer's int8 outputs (docs/link_and_codec.md, paper §V.A).
//
// The device sends a layer either RAW (its faulty outputs y as they are, the DRM baseline) or
// as an INCREMENT against its TMR-voted reference v. The server recomputes the clean outputs g
// from the inputs and adds the increment back.
//
// Increment representation: d = (uint8)(y - v), the difference modulo 256. One byte per
// element, zero exactly where y == v, and bit-exact: y = v + d (mod 256). The decoder applies
// the increment to the base it is given: out = base + d (mod 256), so out == y whenever
// base == v (the case TMR aims for: g == v). A 9-bit increment in [-255, 255] would give
// sat8(g + y - v) instead; the two differ only where TMR failed (g != v) AND g + y - v leaves
// [-128, 127], and the 9th bit would cost a second byte per element in the dense form (and for
// large values in a sparse one), so we do not pay for it. docs/link_and_codec.md has the
// full argument.
//
// Encodings of EncodedLayer::bytes (values are stable: they go on the wire):
//   kRaw             y as n bytes.
//   kRawLz4          one LZ4 block of y (n bytes when decompressed).
//   kIncrementLz4    one LZ4 block of the dense increment d (n bytes), the paper's scheme.
//   kIncrementSparse varint(inner_size) then one LZ4 block of the sparse stream
//                      varint(n), varint(nnz), nnz x varint(gap), nnz x value byte
//                    where gap = position - previous position - 1 (first: position) and the
//                    values are the non-zero increment bytes in position order.
//   kRawZeroMap      varint(n), ceil(n/8) bytes flagging the non-zero elements of y (bit i%8
//                    of byte i/8), then those elements in order (flag_pack.h): raw without its
//                    zeros, which ReLU layers are half made of. Ours; the exact method uses it
//                    (patch_codec.h).
// Varints are unsigned LEB128 of at most 5 bytes (uint32). Elements are counted in
// EncodedLayer::elements; an empty layer (0 elements) has empty bytes in every encoding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/base/status.h"

namespace r2f {

enum class Encoding : uint8_t {
  kRaw = 0,
  kRawLz4 = 1,
  kIncrementLz4 = 2,
  kIncrementSparse = 3,
  kRawZeroMap = 4,
};

const char* EncodingName(Encoding encoding);
inline bool IsIncrement(Encoding e) {
  return e == Encoding::kIncrementLz4 || e == Encoding::kIncrementSparse;
}

// Which increment encoding EncodeIncrement produces.
enum class IncrementFormat {
  kLz4,       // kIncrementLz4
  kSparse,    // kIncrementSparse
  kSmallest,  // whichever of the two is smaller (ties: kIncrementLz4)
};

struct EncodedLayer {
  Encoding encoding = Encoding::kRaw;
  uint32_t elements = 0;
  std::string bytes;
  // Exact values at a few positions, applied after the decoding (patch_codec.h); empty: none.
  std::string patch;
  uint32_t patched = 0;  // positions in the patch
};

// An encoded layer as Decode reads it, its payload where it already is (a received message's
// strings: the server decodes without copying them). `bytes` and `patch` must each be followed by
// one readable byte, as a whole std::string's data is (its terminating null): the zero-map
// readers may touch it.
struct EncodedLayerView {
  EncodedLayerView() = default;
  EncodedLayerView(const EncodedLayer& layer)  // NOLINT: implicit, the encoder's own output
      : encoding(layer.encoding),
        elements(layer.elements),
        bytes(layer.bytes),
        patch(layer.patch),
        patched(layer.patched) {}
  Encoding encoding = Encoding::kRaw;
  uint32_t elements = 0;
  std::string_view bytes, patch;
  uint32_t patched = 0;
};

// Largest layer the codec accepts (2^29 elements): an LZ4 block holds at most ~1.97 GiB and the
// sparse stream can reach 2n + 10 bytes. Batch-16 layers of the model zoo are far below it.
inline constexpr size_t kMaxLayerElements = size_t{1} << 29;

// The faulty outputs as they are (kRaw), or LZ4-compressed (kRawLz4). The paper's DRM sends
// raw outputs uncompressed, so that is the default. InvalidArgument if n > kMaxLayerElements.
Result<EncodedLayer> EncodeRaw(const int8_t* y, size_t n, bool lz4 = false);

// y as kRawZeroMap, whose size is the varint of n + BitmapBytes(n) + (non-zero elements of y).
// InvalidArgument if n > kMaxLayerElements.
Result<EncodedLayer> EncodeRawZeroMap(const int8_t* y, size_t n);

// The increment y - v (mod 256) in `format`. InvalidArgument if n > kMaxLayerElements.
Result<EncodedLayer> EncodeIncrement(const int8_t* y, const int8_t* v, size_t n,
                                     IncrementFormat format);

// kIncrementSparse of y against v at exactly the `count` elements flagged in `differ` (a bitmap
// of n, as DifferBitmap writes): y[i] != v[i] at each of them, and the decoder keeps its base
// everywhere else. The exact method passes the unpatched elements that differ (patch_codec.h).
EncodedLayer EncodeIncrementSparseAt(const int8_t* y, const int8_t* v, const uint8_t* differ,
                                     size_t count, size_t n);

// The adaptive per-batch policy: the smallest of the raw form (kRaw, or kRawLz4 when
// `raw_lz4`) and both increment forms. Ties prefer raw, then kIncrementLz4.
Result<EncodedLayer> EncodeSmallest(const int8_t* y, const int8_t* v, size_t n,
                                    bool raw_lz4 = false);

// Reconstructs the layer into out[0, n), then applies its patch if it has one. `n` is the element
// count the caller expects (from the graph shape); a layer of any other size is rejected. `base` is
// the recomputed reference for increment encodings (required) and ignored for raw ones (may be
// null). `out` may equal `base` (in-place decode) but must not otherwise overlap it. Corrupt input
// of any kind yields Corruption (InvalidArgument for misuse such as a missing base) and never reads
// or writes out of bounds; on error the contents of `out` are unspecified.
Status Decode(const EncodedLayerView& layer, const int8_t* base, int8_t* out, size_t n);

// Share of identical elements, mean(y == v); 1 for an empty layer.
double Similarity(const int8_t* y, const int8_t* v, size_t n);

// Number of elements where y != v.
size_t CountDifferences(const int8_t* y, const int8_t* v, size_t n);

}  // namespace r2f
