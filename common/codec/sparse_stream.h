// Sparse streams: (position, byte) pairs of a layer of n elements, in increasing position order,
// as one LZ4 block. The sparse increment (increment_codec.h) and the exact method's sparse
// patches (patch_codec.h) are both one.
//
//   varint(inner_size) then one LZ4 block of the inner stream
//     varint(n), varint(count), count x varint(gap), count x value byte
//   gap = position - previous position - 1 (first: the position itself)
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "common/base/status.h"
#include "common/codec/lz4_block.h"

namespace r2f {

// The sparse stream of the `count` elements flagged in `bitmap` (a bitmap of n, flag_pack.h,
// with exactly `count` flags and none past n) whose values are values[0, count), in position
// order. Empty for n == 0.
std::string EncodeSparseStream(const uint8_t* bitmap, const int8_t* values, size_t count, size_t n);
// The same with the values (uint8)(y[i] - v[i]) of the flagged elements: a sparse increment.
std::string EncodeSparseDifferences(const uint8_t* bitmap, const int8_t* y, const int8_t* v,
                                    size_t count, size_t n);

// A decompressed stream whose header has been checked: `count` gap varints start at `gaps` and
// end exactly at `values`, which holds the `count` values.
class SparseStreamView {
 public:
  // Decompresses and checks the header; the stream must be for exactly n elements. Corruption
  // naming `what` (a string that outlives the view, such as a literal) for any damage.
  static Result<SparseStreamView> Open(std::string_view bytes, size_t n, const char* what);

  // Calls visit(position, value) for every pair, in order; Corruption for a damaged gap or
  // position (found before any pair past it is visited). The loop is inline so that the
  // per-element visit is too (a std::function call per element cost a third of the decoding),
  // and eight one-byte gaps, the common case, are read at once with one range check.
  template <typename Visit>
  Status ForEach(Visit&& visit) const {
    constexpr uint64_t kHighBits = 0x8080808080808080ull;
    const uint8_t* q = gaps_;
    uint64_t next = 0;
    uint32_t k = 0;
    while (k < count_) {
      uint64_t w = kHighBits;
      if (count_ - k >= 8 && values_ - q >= 8) std::memcpy(&w, q, 8);
      if ((w & kHighBits) == 0) {
        uint64_t pos[8];
        for (int j = 0; j < 8; ++j) {
          pos[j] = next + ((w >> (8 * j)) & 0xFF);
          next = pos[j] + 1;
        }
        if (pos[7] >= n_) return BadPosition(FirstOutOfRange(pos));
        for (int j = 0; j < 8; ++j) visit(pos[j], values_[k + j]);
        q += 8;
        k += 8;
        continue;
      }
      uint32_t gap = 0;
      if (!GetVarint32(&q, values_, &gap)) return BadGap(k);
      const uint64_t pos = next + gap;
      if (pos >= n_) return BadPosition(pos);
      visit(pos, values_[k]);
      next = pos + 1;
      ++k;
    }
    if (q != values_) return StrayBytes(static_cast<size_t>(values_ - q));
    return Status::Ok();
  }

  // The `count` values, in position order.
  const uint8_t* values() const { return values_; }
  uint32_t count() const { return count_; }

 private:
  uint64_t FirstOutOfRange(const uint64_t* pos) const;
  Status BadGap(uint32_t k) const;
  Status BadPosition(uint64_t pos) const;
  Status StrayBytes(size_t stray) const;

  std::shared_ptr<uint8_t[]> inner_;
  const uint8_t* gaps_ = nullptr;    // in inner_; the last gap varint ends at values_
  const uint8_t* values_ = nullptr;  // in inner_
  uint32_t count_ = 0;
  size_t n_ = 0;
  const char* what_ = "";
};

}  // namespace r2f
