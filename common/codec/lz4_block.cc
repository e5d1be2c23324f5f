#include "common/codec/lz4_block.h"

#include <lz4.h>

#include <climits>
#include <memory>

namespace r2f {

void PutVarint32(std::string* dst, uint32_t v) {
  while (v >= 0x80) {
    dst->push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  dst->push_back(static_cast<char>(v));
}

bool GetVarint32(const uint8_t** p, const uint8_t* end, uint32_t* value) {
  uint32_t result = 0;
  for (int shift = 0; shift <= 28 && *p < end; shift += 7) {
    uint32_t byte = **p;
    ++*p;
    if (shift == 28 && byte > 0x0F) return false;  // would overflow uint32
    result |= (byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) {
      *value = result;
      return true;
    }
  }
  return false;
}

void AppendLz4(const char* src, size_t n, std::string* dst) {
  const int bound = LZ4_compressBound(static_cast<int>(n));
  // Compressed into a per-thread buffer and appended: sizing dst to the bound would zero-fill
  // (and page-fault) megabytes per layer that LZ4 then mostly does not use.
  thread_local std::unique_ptr<char[]> scratch;
  thread_local size_t capacity = 0;
  if (capacity < static_cast<size_t>(bound)) {
    scratch.reset(new char[static_cast<size_t>(bound)]);
    capacity = static_cast<size_t>(bound);
  }
  const int written = LZ4_compress_default(src, scratch.get(), static_cast<int>(n), bound);
  // With a LZ4_compressBound-sized destination compression cannot fail.
  if (written > 0) dst->append(scratch.get(), static_cast<size_t>(written));
}

Status DecompressExact(const char* src, size_t src_size, char* dst, size_t size, const char* what) {
  if (src_size == 0 || src_size > static_cast<size_t>(INT_MAX)) {
    return Status::Corruption(std::string(what) + ": LZ4 block of " + std::to_string(src_size) +
                              " bytes is impossible");
  }
  int got = LZ4_decompress_safe(src, dst, static_cast<int>(src_size), static_cast<int>(size));
  if (got < 0) return Status::Corruption(std::string(what) + ": malformed LZ4 block");
  if (static_cast<size_t>(got) != size) {
    return Status::Corruption(std::string(what) + ": LZ4 block holds " + std::to_string(got) +
                              " bytes, expected " + std::to_string(size));
  }
  return Status::Ok();
}

}  // namespace r2f
