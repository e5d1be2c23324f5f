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

#include "common/base/status.h"
#include "common/codec/lz4_block.h"

namespace r2f {

class SparseStreamWriter {
 public:
  explicit SparseStreamWriter(size_t n) : n_(n) {}
  // Room for `count` pairs (one-byte gaps), so that Add does not reallocate.
  void Reserve(size_t count) {
    gaps_.reserve(count);
    values_.reserve(count);
  }
  // `position` must be larger than the previous one and < n.
  void Add(size_t position, uint8_t value) {
    const auto gap = static_cast<uint32_t>(position - next_);
    if (gap < 0x80) {
      gaps_.push_back(static_cast<char>(gap));  // the common case: one byte
    } else {
      PutVarint32(&gaps_, gap);
    }
    values_.push_back(static_cast<char>(value));
    next_ = position + 1;
  }
  // Adds (i, value_at(i)) for every i < n flagged in `bitmap` (bit i % 8 of byte i / 8; no bit
  // past n set), in order, after any earlier pair. `count` is the number of flags: the buffers
  // grow once, and no more pairs than that are added.
  template <typename ValueAt>
  void AddFlagged(const uint8_t* bitmap, size_t count, ValueAt&& value_at) {
    const size_t gaps_at = gaps_.size(), values_at = values_.size();
    // The gaps sum to less than n, so at most n / 128^j of them need a (j+1)-th varint byte:
    // count + n/127 bytes hold them all.
    gaps_.resize(gaps_at + count + n_ / 127 + 5);
    values_.resize(values_at + count);
    char* gap_out = &gaps_[0] + gaps_at;
    char* value_out = &values_[0] + values_at;
    const char* const values_end = value_out + count;
    size_t next = next_;
    const size_t bytes = (n_ + 7) / 8;
    for (size_t b = 0; b < bytes && value_out != values_end; b += 8) {
      uint64_t word = 0;
      std::memcpy(&word, bitmap + b, bytes - b < 8 ? bytes - b : 8);  // little-endian
      for (; word != 0 && value_out != values_end; word &= word - 1) {
        const size_t position = 8 * b + static_cast<size_t>(__builtin_ctzll(word));
        auto gap = static_cast<uint32_t>(position - next);
        for (; gap >= 0x80; gap >>= 7) *gap_out++ = static_cast<char>((gap & 0x7F) | 0x80);
        *gap_out++ = static_cast<char>(gap);
        *value_out++ = static_cast<char>(value_at(position));
        next = position + 1;
      }
    }
    gaps_.resize(static_cast<size_t>(gap_out - gaps_.data()));
    values_.resize(static_cast<size_t>(value_out - values_.data()));
    next_ = next;
  }
  size_t count() const { return values_.size(); }
  // The encoded stream (empty for n == 0).
  std::string Finish() const;

 private:
  size_t n_;
  size_t next_ = 0;
  std::string gaps_, values_;
};

// A decompressed stream whose header has been checked: `count` gap varints start at `gaps` and
// end exactly at `values`, which holds the `count` values.
class SparseStreamView {
 public:
  // Decompresses and checks the header; the stream must be for exactly n elements. Corruption
  // naming `what` (a string that outlives the view, such as a literal) for any damage.
  static Result<SparseStreamView> Open(const std::string& bytes, size_t n, const char* what);

  // Calls visit(position, value) for every pair, in order, stopping at its first error;
  // Corruption for a damaged gap or position. The loop is inline so that the per-element
  // visit is too (a std::function call per element cost a third of the decoding).
  template <typename Visit>
  Status ForEach(Visit&& visit) const {
    const uint8_t* q = gaps_;
    uint64_t next = 0;
    for (uint32_t k = 0; k < count_; ++k) {
      if (q >= values_) return BadGap(k);
      uint32_t gap = *q;
      if (gap < 0x80) {
        ++q;
      } else if (!GetVarint32(&q, values_, &gap)) {
        return BadGap(k);
      }
      const uint64_t pos = next + gap;
      if (pos >= n_) return BadPosition(pos);
      R2F_RETURN_IF_ERROR(visit(pos, values_[k]));
      next = pos + 1;
    }
    if (q != values_) return StrayBytes(static_cast<size_t>(values_ - q));
    return Status::Ok();
  }

 private:
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
