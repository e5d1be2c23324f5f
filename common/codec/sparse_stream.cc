#include "common/codec/sparse_stream.h"

namespace r2f {

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

Result<SparseStreamView> SparseStreamView::Open(const std::string& bytes, size_t n,
                                                const char* what) {
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
  SparseStreamView view;
  view.inner_.reset(new uint8_t[inner_size]);
  R2F_RETURN_IF_ERROR(
      DecompressExact(reinterpret_cast<const char*>(p), static_cast<size_t>(end - p),
                      reinterpret_cast<char*>(view.inner_.get()), inner_size, what));
  const uint8_t* q = view.inner_.get();
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
  view.gaps_ = q;
  view.values_ = inner_end - count;
  view.count_ = count;
  view.n_ = n;
  view.what_ = what;
  return view;
}

Status SparseStreamView::BadGap(uint32_t k) const {
  return Status::Corruption(std::string(what_) + ": truncated gap varint of non-zero element " +
                            std::to_string(k));
}

Status SparseStreamView::BadPosition(uint64_t pos) const {
  return Status::Corruption(std::string(what_) + ": position " + std::to_string(pos) +
                            " out of range for " + std::to_string(n_) + " elements");
}

Status SparseStreamView::StrayBytes(size_t stray) const {
  return Status::Corruption(std::string(what_) + ": " + std::to_string(stray) +
                            " stray bytes between gaps and values");
}

}  // namespace r2f
