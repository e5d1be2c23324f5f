#include "common/base/compressed_file.h"

#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace r2f {
namespace {

constexpr size_t kChunk = size_t{1} << 20;

Status TooLarge(const std::string& path, size_t max_bytes) {
  return Status::ResourceExhausted("file '" + path + "' holds more than " +
                                   std::to_string(max_bytes) + " bytes (the limit)");
}

Result<std::vector<uint8_t>> ReadGzip(const std::string& path, size_t max_bytes) {
  gzFile gz = gzopen(path.c_str(), "rb");
  if (gz == nullptr) {
    return Status::NotFound("cannot open '" + path + "': " + std::strerror(errno));
  }
  gzbuffer(gz, 256 * 1024);
  std::vector<uint8_t> out;
  Status status;
  for (;;) {
    const size_t old_size = out.size();
    if (old_size > max_bytes) {
      status = TooLarge(path, max_bytes);
      break;
    }
    out.resize(old_size + kChunk);
    const int n = gzread(gz, out.data() + old_size, static_cast<unsigned>(kChunk));
    if (n < 0) {
      int errnum = Z_OK;
      const char* msg = gzerror(gz, &errnum);
      std::string what = errnum == Z_ERRNO ? std::strerror(errno) : (msg ? msg : "unknown error");
      // zlib reports a stream cut short as Z_BUF_ERROR "unexpected end of file".
      status =
          errnum == Z_ERRNO
              ? Status::IoError("cannot read '" + path + "': " + what)
              : Status::Corruption("gzip file '" + path + "' is damaged or truncated: " + what);
      break;
    }
    out.resize(old_size + static_cast<size_t>(n));
    if (n == 0) break;
  }
  gzclose(gz);
  if (!status.ok()) return status;
  if (out.size() > max_bytes) return TooLarge(path, max_bytes);
  out.shrink_to_fit();
  return out;
}

}  // namespace

Result<std::vector<uint8_t>> ReadFileMaybeGzip(const std::string& path, size_t max_bytes) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return Status::NotFound("cannot open '" + path + "': " + std::strerror(errno));
  }
  std::vector<uint8_t> out;
  uint8_t buf[64 * 1024];
  size_t n;
  bool too_large = false;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) {
    if (out.size() + n > max_bytes) {
      too_large = true;
      break;
    }
    // Once the gzip magic is seen, zlib reads the file itself.
    if (out.empty() && n >= 2 && buf[0] == 0x1f && buf[1] == 0x8b) {
      std::fclose(f);
      return ReadGzip(path, max_bytes);
    }
    out.insert(out.end(), buf, buf + n);
  }
  const bool failed = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (too_large) return TooLarge(path, max_bytes);
  if (failed) return Status::IoError("cannot read '" + path + "': " + std::strerror(err));
  return out;
}

}  // namespace r2f
