// Sparse streams: (position, byte) pairs of a layer of n elements, in increasing position order,
// as one LZ4 block. The sparse increment (increment_codec.h) and the exact method's patches
// (patch_codec.h) are both one.
//
//   varint(inner_size) then one LZ4 block of the inner stream
//     varint(n), varint(count), count x varint(gap), count x value byte
//   gap = position - previous position - 1 (first: the position itself)
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "common/base/status.h"

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
    PutGap(static_cast<uint32_t>(position - next_));
    values_.push_back(static_cast<char>(value));
    next_ = position + 1;
  }
  size_t count() const { return values_.size(); }
  // The encoded stream (empty for n == 0).
  std::string Finish() const;

 private:
  void PutGap(uint32_t gap);
  size_t n_;
  size_t next_ = 0;
  std::string gaps_, values_;
};

// Calls visit(position, value) for every pair, in order, stopping at its first error. The
// stream must be for exactly n elements; Corruption naming `what` for any damage.
Status ReadSparseStream(const std::string& bytes, size_t n, const char* what,
                        const std::function<Status(uint64_t position, uint8_t value)>& visit);

}  // namespace r2f
