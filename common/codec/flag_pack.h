// Values selected by a bitmap, packed and unpacked: the exact method's dense patches and its
// raw form with a zero bitmap (kRawZeroMap) are both a bitmap of n flags (bit i % 8 of byte
// i / 8 for element i) followed by the flagged values in order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/base/status.h"

namespace r2f {

inline size_t BitmapBytes(size_t n) { return (n + 7) / 8; }

// Packs in[i] where flags[i] != 0 into `out`, in order, and writes the n flags to `bitmap`
// (ceil(n/8) bytes); returns how many were packed. `out` needs 64 bytes of slack after them.
size_t PackFlagged(const int8_t* in, const uint8_t* flags, size_t n, uint8_t* bitmap, int8_t* out);

// The number of set flags of a bitmap of n; Corruption naming `what` if a bit past n is set.
Result<size_t> CountFlags(const uint8_t* bitmap, size_t n, const char* what);

// out[i] = the next of `values` where flag i is set, else 0. `count` is the number of set
// flags (of values); `values` must be readable one byte past the last value (a std::string's
// terminating null will do).
void ExpandFlagged(const uint8_t* bitmap, const int8_t* values, size_t count, size_t n,
                   int8_t* out);

// out[i] = the next of `values` where flag i is set; other elements are left as they are.
// `count` as for ExpandFlagged.
void ScatterFlagged(const uint8_t* bitmap, const int8_t* values, size_t count, size_t n,
                    int8_t* out);

// Writes the n flags a[i] != b[i] to `bitmap` (ceil(n/8) bytes); returns how many are set.
size_t DifferBitmap(const int8_t* a, const int8_t* b, size_t n, uint8_t* bitmap);

// What the exact encoder (patch_codec.h) chooses its form by, counted over one layer.
struct ExactScan {
  size_t equal = 0;            // y == v: the layer's similarity is equal / n
  size_t differ = 0;           // unflagged elements where y != v: the increment's non-zeros
  size_t flagged = 0;          // flagged elements: the patch
  size_t zeros = 0;            // y == 0
  size_t flagged_nonzero = 0;  // flagged elements where y != 0
  // y[i] == y[i - 1] == ... == y[i - 4]: bytes deep inside runs, which LZ4 (whose matches are
  // 4 bytes or longer) can drop. Activations repeat little else, so raw+LZ4 of a layer is
  // about n - run_bytes at best.
  size_t run_bytes = 0;
};
// The exact encoder's one pass over y, v and flags (the layer's data is read once: the encoder
// is bound by memory): differ_bitmap gets the flags flags[i] == 0 && y[i] != v[i] (where the
// increment is non-zero), flag_bitmap the flags flags[i] != 0 (ceil(n/8) bytes each), and
// flagged_values the y[i] where flags[i] != 0, in order (kPackSlack bytes of slack after them).
ExactScan ScanExact(const int8_t* y, const int8_t* v, const uint8_t* flags, size_t n,
                    uint8_t* differ_bitmap, uint8_t* flag_bitmap, int8_t* flagged_values);

// The gaps of a sparse stream (sparse_stream.h) over the `count` elements flagged in a bitmap of
// n (no bit past n set): for each flagged position, varint(position - previous position - 1),
// the first counted from 0. Writes them at `gaps`, which needs MaxGapBytes(count, n) +
// kPackSlack bytes, and returns how many bytes they took.
size_t PackGapVarints(const uint8_t* bitmap, size_t count, size_t n, uint8_t* gaps);

// PackGapVarints, and in the same pass differences[k] = (uint8)(y[i] - v[i]) for the k-th
// flagged element i: a sparse increment's values (`count` bytes and kPackSlack of slack).
size_t PackGapsAndDifferences(const uint8_t* bitmap, size_t count, size_t n, const int8_t* y,
                              const int8_t* v, uint8_t* gaps, uint8_t* differences);

// The most bytes PackGapVarints writes for `count` flags of n: the gaps sum to less than n, so
// at most n / 128^j of them need a (j+1)-th varint byte.
inline size_t MaxGapBytes(size_t count, size_t n) { return count + n / 127 + 5; }

// A zero map of n values: ceil(n/8) bytes flagging the non-zero ones, then those values in
// order. kRawZeroMap is one (over the layer), and so is the value part of a dense patch (over
// the patched values). Appends the zero map of values[0, n) to *out.
void AppendZeroMap(const int8_t* values, size_t n, std::string* out);

// Reads a zero map of exactly n values that fills all of [p, p + size) into out[0, n);
// Corruption naming `what` for any damage. The byte after p + size must be readable (the zero
// map ends its message, whose std::string has a terminating null).
Status ReadZeroMap(const uint8_t* p, size_t size, size_t n, const char* what, int8_t* out);

// The forms that carry a bitmap repeat their element count first, so that they cannot pass for
// a layer of another size: reads varint(n) at *p (advancing it), Corruption naming `what` unless
// it is `n`.
Status ReadElementCount(const uint8_t** p, const uint8_t* end, size_t n, const char* what);

// Which implementation the functions above use: the widest this process may use (AVX-512 BW /
// VBMI2, the default; R2F_CPU_ISA caps it, common/base/cpu_features.h), at most AVX2 (what
// AVX2-only machines and AVX-512 ones without VBMI2 run for everything but DifferBitmap, which has
// no AVX2 version), or the portable one, which every machine runs the same. Tests compare them;
// R2F_CODEC_ISA=avx2 or =portable in the environment sets the level for a whole process.
enum class FlagPackIsa { kBest, kAvx2, kPortable };
// Returns the level set before (tests restore it).
FlagPackIsa SetFlagPackIsa(FlagPackIsa isa);
// "avx512_vbmi2", "avx2" or "portable": what PackFlagged runs now (for benchmark reports).
const char* FlagPackIsaName();

// Bytes of slack PackFlagged needs after its output.
inline constexpr size_t kPackSlack = 64;

}  // namespace r2f
