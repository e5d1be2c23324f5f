#include "common/base/checksum.h"

#include <zlib.h>

namespace r2f {

uint32_t Crc32Extend(uint32_t crc, std::string_view data) {
  // zlib treats a null buffer as "return the initial value", which would reset a running CRC.
  if (data.empty()) return crc;
  // crc32_z takes a size_t length, so payloads above 4 GiB need no splitting.
  return static_cast<uint32_t>(
      crc32_z(crc, reinterpret_cast<const Bytef*>(data.data()), data.size()));
}

uint32_t Crc32(std::string_view data) { return Crc32Extend(0, data); }

uint32_t Crc32Combine(uint32_t crc_a, uint32_t crc_b, uint64_t length_b) {
  return static_cast<uint32_t>(crc32_combine64(crc_a, crc_b, static_cast<z_off64_t>(length_b)));
}

}  // namespace r2f
