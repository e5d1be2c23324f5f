// The per-ISA kernels behind flag_pack.h, for its run-time dispatch only (flag_pack.cc). Each
// does what the flag_pack.h function of the same name says; the extra `count` is the number of
// values the bitmap flags (the kernels stop reading 8-byte groups before the last of them).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>

#include "common/codec/flag_pack.h"

namespace r2f::flag_pack_internal {

// One step of ScanExact: the W elements of y, v and flags from element i of n, and the element
// before each (prev[j] = y[i + j - 1]). They are read in place, except in the first and the last
// step, which read padded copies: past the end elements that count as equal, zero and unflagged,
// and before the layer's first element one that differs from it (so nothing
// outside the buffers is read).
template <size_t W>
class ScanStep {
 public:
  ScanStep(const int8_t* y_all, const int8_t* v_all, const uint8_t* flags_all, size_t i, size_t n)
      : m(std::min(W, n - i)),
        y(y_all + i),
        v(v_all + i),
        prev(i > 0 ? y_all + i - 1 : y_all),
        flags(flags_all + i) {
    if (m == W && i > 0) return;
    std::memset(y_copy_, 0, W);
    std::memset(v_copy_, 0, W);
    std::memset(flags_copy_, 0, W);
    std::memcpy(y_copy_, y, m);
    std::memcpy(v_copy_, v, m);
    std::memcpy(flags_copy_, flags, m);
    prev_copy_[0] = static_cast<int8_t>(i > 0 ? y_all[i - 1] : y_copy_[0] ^ 1);
    std::memcpy(prev_copy_ + 1, y_copy_, W - 1);
    y = y_copy_;
    v = v_copy_;
    prev = prev_copy_;
    flags = flags_copy_;
  }
  ScanStep(const ScanStep&) = delete;
  ScanStep& operator=(const ScanStep&) = delete;

  const size_t m;  // elements of the layer in this step
  const int8_t *y, *v, *prev;
  const uint8_t* flags;

 private:
  int8_t y_copy_[W], v_copy_[W], prev_copy_[W];
  uint8_t flags_copy_[W];
};

// How far ahead ScanExact's kernels ask for the three streams they read (a prefetch never
// faults, so past a layer's end is harmless). The scan is bound by memory; on the AMD EPYC the
// hint made the encoder of a ResNet18 batch 5-15% faster in interleaved runs, and 1024 to 4096
// bytes ahead did about as well as 2048.
inline constexpr size_t kPrefetchAhead = 2048;

// Asks for the bytes kPrefetchAhead past y, v and flags (the step's three streams). The
// addresses are computed as integers: a pointer past its array's end is not to be formed.
inline void PrefetchAhead(const int8_t* y, const int8_t* v, const uint8_t* flags) {
  for (const void* p : {static_cast<const void*>(y), static_cast<const void*>(v),
                        static_cast<const void*>(flags)}) {
    __builtin_prefetch(
        reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(p) + kPrefetchAhead));
  }
}

// Stores the first `bytes` bytes of a mask (all of it where bytes >= its size, the case of every
// step but a layer's last): with a constant size the copy is one store, where a variable size is
// a call to memcpy per step.
template <typename Mask>
inline void StoreMaskBytes(uint8_t* dst, Mask mask, size_t bytes) {
  if (bytes >= sizeof(Mask)) {
    std::memcpy(dst, &mask, sizeof(Mask));
  } else {
    std::memcpy(dst, &mask, bytes);
  }
}

// The mask in the first `bytes` bytes at src (zero above them), as StoreMaskBytes wrote it.
template <typename Mask>
inline Mask LoadMaskBytes(const uint8_t* src, size_t bytes) {
  Mask mask = 0;
  if (bytes >= sizeof(Mask)) {
    std::memcpy(&mask, src, sizeof(Mask));
  } else {
    std::memcpy(&mask, src, bytes);
  }
  return mask;
}

// Given the step's repeat mask (bit j: element j equals the one before) and the last step's,
// bit j set where elements j-3 .. j each equal the one before: five equal values in a row.
template <typename Mask>
Mask DeepRuns(Mask repeat, Mask last_repeat) {
  constexpr int kBits = 8 * sizeof(Mask);
  const auto before = [&](int d) {
    return static_cast<Mask>((repeat << d) | (last_repeat >> (kBits - d)));
  };
  return static_cast<Mask>(repeat & before(1) & before(2) & before(3));
}

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
