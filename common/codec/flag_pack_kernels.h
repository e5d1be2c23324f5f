// The per-ISA kernels behind flag_pack.h, for its run-time dispatch only (flag_pack.cc). Each
// does what the flag_pack.h function of the same name says; the extra `count` is the number of
// values the bitmap flags (the kernels stop reading 8-byte groups before the last of them).
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/codec/flag_pack.h"

namespace r2f::flag_pack_internal {

// AVX2 (with SSSE3 byte shuffles and POPCNT, which every AVX2 CPU has): 32 flags per compare,
// 8 values per shuffle through a 256-entry table. flag_pack_avx2.cc.
size_t PackFlaggedAvx2(const int8_t* in, const uint8_t* flags, size_t n, uint8_t* bitmap,
                       int8_t* out);
void ExpandFlaggedAvx2(const uint8_t* bitmap, const int8_t* values, size_t count, size_t n,
                       int8_t* out);
void ScatterFlaggedAvx2(const uint8_t* bitmap, const int8_t* values, size_t count, size_t n,
                        int8_t* out);
ExactScan ScanExactAvx2(const int8_t* y, const int8_t* v, const uint8_t* flags, size_t n,
                        uint8_t* differ_bitmap, uint8_t* flag_bitmap, int8_t* flagged_values);

}  // namespace r2f::flag_pack_internal
