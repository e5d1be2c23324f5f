#include "common/codec/sparse_stream.h"

#include <cstring>
#include <vector>

#include "common/base/uninitialized_vector.h"
#include "common/codec/flag_pack.h"

namespace r2f {

namespace {

// The inner stream is built in a per-thread buffer (fresh megabyte buffers per layer cost page
// faults) and compressed from there: write(at) writes the gaps and then the values at `at` and
// returns the end of the values.
template <typename Write>
std::string EncodeFlagged(size_t count, size_t n, Write&& write) {
  std::string out;
  if (n == 0) return out;
  thread_local UninitializedVector<uint8_t> inner;
  const size_t room = 10 + MaxGapBytes(count, n) + count + kPackSlack;
  if (inner.size() < room) inner.resize(room);
  uint8_t* p = WriteVarint32(inner.data(), static_cast<uint32_t>(n));
  p = WriteVarint32(p, static_cast<uint32_t>(count));
  const auto size = static_cast<size_t>(write(p) - inner.data());
  PutVarint32(&out, static_cast<uint32_t>(size));
  AppendLz4(reinterpret_cast<const char*>(inner.data()), size, &out);
  return out;
}

}  // namespace

std::string EncodeSparseStream(const uint8_t* bitmap, const int8_t* values, size_t count,
                               size_t n) {
  return EncodeFlagged(count, n, [=](uint8_t* at) {
    at += PackGapVarints(bitmap, count, n, at);
    if (count != 0) std::memcpy(at, values, count);
    return at + count;
  });
}

std::string EncodeSparseDifferences(const uint8_t* bitmap, const int8_t* y, const int8_t* v,
                                    size_t count, size_t n) {
  // The values go after the gaps, whose size is known only once they are written: both are
  // packed in one pass, the values to a buffer of their own, then put in place.
  thread_local UninitializedVector<uint8_t> values;
  if (values.size() < count + kPackSlack) values.resize(count + kPackSlack);
  return EncodeFlagged(count, n, [=](uint8_t* at) {
    at += PackGapsAndDifferences(bitmap, count, n, y, v, at, values.data());
    if (count != 0) std::memcpy(at, values.data(), count);
    return at + count;
  });
}

Result<SparseStreamView> SparseStreamView::Open(std::string_view bytes, size_t n,
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

uint64_t SparseStreamView::FirstOutOfRange(const uint64_t* pos) const {
  while (*pos < n_) ++pos;  // the last of the eight is out of range
  return *pos;
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
