#include "common/codec/sparse_stream.h"

#include <memory>

#include "common/codec/lz4_block.h"

namespace r2f {

void SparseStreamWriter::PutGap(uint32_t gap) {
  if (gap < 0x80) {
    gaps_.push_back(static_cast<char>(gap));  // the common case: one byte
  } else {
    PutVarint32(&gaps_, gap);
  }
}

std::string SparseStreamWriter::Finish() const {
  std::string out;
  if (n_ == 0) return out;
  std::string inner;
  inner.reserve(10 + gaps_.size() + values_.size());
  PutVarint32(&inner, static_cast<uint32_t>(n_));
  PutVarint32(&inner, static_cast<uint32_t>(values_.size()));
  inner += gaps_;
  inner += values_;
  PutVarint32(&out, static_cast<uint32_t>(inner.size()));
  AppendLz4(inner.data(), inner.size(), &out);
  return out;
}

Status ReadSparseStream(const std::string& bytes, size_t n, const char* what,
                        const std::function<Status(uint64_t position, uint8_t value)>& visit) {
  const std::string where(what);
  const uint8_t* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const uint8_t* end = p + bytes.size();
  uint32_t inner_size = 0;
  if (!GetVarint32(&p, end, &inner_size)) {
    return Status::Corruption(where + ": truncated or oversized stream-size varint");
  }
  // The writer's stream is at most 2n + 10 bytes; a larger claim is damage, and refusing it
  // keeps a corrupt header from making us allocate gigabytes.
  if (inner_size < 2 || inner_size > 2 * static_cast<uint64_t>(n) + 10) {
    return Status::Corruption(where + ": stream size " + std::to_string(inner_size) +
                              " impossible for " + std::to_string(n) + " elements");
  }
  std::unique_ptr<uint8_t[]> inner(new uint8_t[inner_size]);
  R2F_RETURN_IF_ERROR(DecompressExact(reinterpret_cast<const char*>(p),
                                      static_cast<size_t>(end - p),
                                      reinterpret_cast<char*>(inner.get()), inner_size, what));
  const uint8_t* q = inner.get();
  const uint8_t* inner_end = q + inner_size;
  // The stream repeats the element count so that it cannot pass for a layer of another size.
  uint32_t elements = 0;
  if (!GetVarint32(&q, inner_end, &elements)) {
    return Status::Corruption(where + ": truncated element count");
  }
  if (elements != n) {
    return Status::Corruption(where + ": stream is for " + std::to_string(elements) +
                              " elements, expected " + std::to_string(n));
  }
  uint32_t count = 0;
  if (!GetVarint32(&q, inner_end, &count)) {
    return Status::Corruption(where + ": truncated non-zero count");
  }
  if (count > n || count > static_cast<size_t>(inner_end - q)) {
    return Status::Corruption(where + ": " + std::to_string(count) +
                              " non-zero elements impossible for " + std::to_string(n) +
                              " elements in a " + std::to_string(inner_size) + "-byte stream");
  }
  // The values are the last `count` bytes; the gap varints fill exactly the bytes before them.
  const uint8_t* values = inner_end - count;
  uint64_t next = 0;
  for (uint32_t k = 0; k < count; ++k) {
    uint32_t gap = 0;
    if (!GetVarint32(&q, values, &gap)) {
      return Status::Corruption(where + ": truncated gap varint of non-zero element " +
                                std::to_string(k));
    }
    const uint64_t pos = next + gap;
    if (pos >= n) {
      return Status::Corruption(where + ": position " + std::to_string(pos) + " out of range for " +
                                std::to_string(n) + " elements");
    }
    R2F_RETURN_IF_ERROR(visit(pos, values[k]));
    next = pos + 1;
  }
  if (q != values) {
    return Status::Corruption(where + ": " + std::to_string(values - q) +
                              " stray bytes between gaps and values");
  }
  return Status::Ok();
}

}  // namespace r2f
