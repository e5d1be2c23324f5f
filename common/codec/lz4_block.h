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
// Reads a varint from [*p, end) and advances *p; false if truncated or wider than 32 bits.
bool GetVarint32(const uint8_t** p, const uint8_t* end, uint32_t* value);

}  // namespace r2f
