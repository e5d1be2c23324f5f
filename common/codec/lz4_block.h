// The byte-level pieces the codecs share: LZ4 blocks and LEB128 varints.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/base/status.h"

namespace r2f {

// Appends one LZ4 block of src[0, n) to *dst (n <= LZ4_MAX_INPUT_SIZE, checked by callers).
void AppendLz4(const char* src, size_t n, std::string* dst);

// Decompresses one LZ4 block that must expand to exactly `size` bytes into dst; Corruption
// naming `what` otherwise.
Status DecompressExact(const char* src, size_t src_size, char* dst, size_t size, const char* what);

// Unsigned LEB128 of at most 5 bytes.
void PutVarint32(std::string* dst, uint32_t v);
// Writes the varint of v at p (room for 5 bytes) and returns the byte after it.
inline uint8_t* WriteVarint32(uint8_t* p, uint32_t v) {
  for (; v >= 0x80; v >>= 7) *p++ = static_cast<uint8_t>((v & 0x7F) | 0x80);
  *p++ = static_cast<uint8_t>(v);
  return p;
}
// Reads a varint from [*p, end) and advances *p; false if truncated or wider than 32 bits.
bool GetVarint32(const uint8_t** p, const uint8_t* end, uint32_t* value);

}  // namespace r2f
