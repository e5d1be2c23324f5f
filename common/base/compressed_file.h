// Reads a whole file that may be gzip-compressed (detected by the gzip magic bytes 1f 8b).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/base/status.h"

namespace r2f {

// The file's contents, decompressed when the file starts with the gzip magic (concatenated
// gzip members are read as one stream, as gzip -d does). Errors: NotFound when the file cannot
// be opened, IoError on a read failure, Corruption for a damaged or truncated gzip stream,
// ResourceExhausted when the (decompressed) contents exceed `max_bytes`. Messages name `path`.
Result<std::vector<uint8_t>> ReadFileMaybeGzip(const std::string& path, size_t max_bytes);

}  // namespace r2f
