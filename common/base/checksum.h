// CRC-32 (the zlib / IEEE 802.3 polynomial) over byte strings.
//
// The standard CRC-32 that every MQTT peer can reproduce with any routine (zlib's crc32, Python's
// zlib.crc32). Computed with Intel's ISA-L (carry-less multiply, ~10x zlib's speed); combined
// with zlib's crc32_combine.
#pragma once

#include <cstdint>
#include <string_view>

namespace r2f {

// CRC-32 of `data`; Crc32("") == 0, Crc32("123456789") == 0xCBF43926.
uint32_t Crc32(std::string_view data);

// Continues a running CRC: Crc32Extend(Crc32(a), b) == Crc32(a + b).
uint32_t Crc32Extend(uint32_t crc, std::string_view data);

// The CRC of a concatenation from the CRCs of its parts, without reading them (zlib's
// crc32_combine, O(log length)): Crc32Combine(Crc32(a), Crc32(b), b.size()) == Crc32(a + b).
uint32_t Crc32Combine(uint32_t crc_a, uint32_t crc_b, uint64_t length_b);

}  // namespace r2f
