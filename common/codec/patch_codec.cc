#include "common/codec/patch_codec.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/codec/byte_flags.h"
#include "common/codec/lz4_block.h"
#include "common/codec/sparse_stream.h"

namespace r2f {

namespace {

enum PatchForm : uint8_t { kPositions = 0, kBitmap = 1 };

size_t BitmapBytes(size_t n) { return (n + 7) / 8; }

std::string EncodePositions(const int8_t* y, const uint8_t* mask, size_t n, size_t count) {
  SparseStreamWriter stream(n);
  stream.Reserve(count);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {  // sixteen flags at a time, visiting only the set ones
    for (unsigned rest = NonZeroBits16(mask + i); rest != 0; rest &= rest - 1) {
      const size_t j = i + static_cast<size_t>(__builtin_ctz(rest));
      stream.Add(j, static_cast<uint8_t>(y[j]));
    }
  }
  for (; i < n; ++i) {
    if (mask[i] != 0) stream.Add(i, static_cast<uint8_t>(y[i]));
  }
  std::string out(1, static_cast<char>(kPositions));
  out += stream.Finish();
  return out;
}

// Packs in[i] where flags[i] != 0 into `out`, in order, and sets bit i % 8 of bitmap[i / 8]
// for each; returns how many. Branch-free: every byte is stored and only flagged ones advance
// the cursor (this is for dense patches, where branches mispredict), so `out` needs 16 bytes
// of slack.
size_t PackFlagged(const int8_t* in, const uint8_t* flags, size_t n, uint8_t* bitmap, int8_t* out) {
  size_t k = 0;
  for (size_t i = 0; i < n; i += 16) {
    const uint16_t bits = NonZeroBitsAt(flags, i, n);
    for (size_t j = 0; j < 16; ++j) {
      out[k] = i + j < n ? in[i + j] : 0;
      k += (bits >> j) & 1u;
    }
    bitmap[i / 8] = static_cast<uint8_t>(bits);
    if (i + 8 < n) bitmap[i / 8 + 1] = static_cast<uint8_t>(bits >> 8);
  }
  return k;
}

// The bitmap form: varint(n), the patch bitmap, then over the `count` patched values a second
// bitmap of the non-zero ones, and those values. Half or more of the patched values are ReLU
// zeros, so they cost a bit each instead of a byte.
std::string EncodeBitmap(const int8_t* y, const uint8_t* mask, size_t n, size_t count) {
  thread_local std::vector<int8_t> patched;
  patched.resize(count + 16);
  const size_t map_bytes = BitmapBytes(n), value_map_bytes = BitmapBytes(count);
  std::string out(1, static_cast<char>(kBitmap));
  PutVarint32(&out, static_cast<uint32_t>(n));
  const size_t header = out.size();
  out.resize(header + map_bytes + value_map_bytes + count + 16);
  auto* map = reinterpret_cast<uint8_t*>(&out[header]);
  auto* value_map = map + map_bytes;
  auto* values = reinterpret_cast<int8_t*>(value_map + value_map_bytes);
  PackFlagged(y, mask, n, map, patched.data());  // `count` values: the caller counted the mask
  const auto* as_flags = reinterpret_cast<const uint8_t*>(patched.data());
  const size_t nonzero = PackFlagged(patched.data(), as_flags, count, value_map, values);
  out.resize(header + map_bytes + value_map_bytes + nonzero);
  return out;
}

std::string EncodePatchOfCount(const int8_t* y, const uint8_t* mask, size_t n, size_t count) {
  if (count == 0) return std::string();
  return count > n / 8 ? EncodeBitmap(y, mask, n, count) : EncodePositions(y, mask, n, count);
}

// Set bits of a bitmap of n flags, or Corruption if a bit past n is set.
Result<size_t> CountFlags(const uint8_t* map, size_t n, const char* what) {
  const size_t bytes = BitmapBytes(n);
  size_t count = 0, b = 0;
  for (; b + 8 <= bytes; b += 8) {
    uint64_t w;
    std::memcpy(&w, map + b, 8);
    count += CountBits64(w);
  }
  for (; b < bytes; ++b) count += CountBits64(map[b]);
  if (n % 8 != 0 && (map[bytes - 1] >> (n % 8)) != 0) {
    return Status::Corruption(std::string("patch: ") + what + " flags elements past its " +
                              std::to_string(n));
  }
  return count;
}

Status ApplyBitmap(const uint8_t* p, size_t size, int8_t* out, size_t n) {
  const uint8_t* end = p + size;
  uint32_t elements = 0;
  if (!GetVarint32(&p, end, &elements)) return Status::Corruption("patch: truncated bitmap header");
  // The bitmap repeats the element count so that it cannot pass for a layer of another size.
  if (elements != n) {
    return Status::Corruption("patch: bitmap is for " + std::to_string(elements) +
                              " elements, expected " + std::to_string(n));
  }
  size = static_cast<size_t>(end - p);
  const size_t map_bytes = BitmapBytes(n);
  if (size < map_bytes) {
    return Status::Corruption("patch: " + std::to_string(size) + " bytes for a bitmap of " +
                              std::to_string(n) + " elements");
  }
  R2F_ASSIGN_OR_RETURN(const size_t count, CountFlags(p, n, "bitmap"));
  const size_t value_map_bytes = BitmapBytes(count);
  if (size - map_bytes < value_map_bytes) {
    return Status::Corruption("patch: no room for the value bitmap of " + std::to_string(count) +
                              " patched elements");
  }
  const uint8_t* value_map = p + map_bytes;
  R2F_ASSIGN_OR_RETURN(const size_t nonzero, CountFlags(value_map, count, "value bitmap"));
  if (size - map_bytes - value_map_bytes != nonzero) {
    return Status::Corruption("patch: value bitmap flags " + std::to_string(nonzero) +
                              " non-zero values but " +
                              std::to_string(size - map_bytes - value_map_bytes) + " follow");
  }
  const auto* values = reinterpret_cast<const int8_t*>(value_map + value_map_bytes);
  // The patched values with their zeros put back, branch-free. values[v] once v reaches
  // `nonzero` reads the byte after them (the string's terminating null at the latest) and is
  // masked to 0.
  thread_local std::vector<int8_t> patched;
  patched.resize(count);
  size_t v = 0;
  for (size_t k = 0; k < count; ++k) {
    const unsigned bit = (value_map[k / 8] >> (k % 8)) & 1u;
    patched[k] = static_cast<int8_t>(values[v] & -static_cast<int>(bit));
    v += bit;
  }
  size_t k = 0;
  for (size_t b = 0; b < map_bytes; ++b) {
    for (unsigned rest = p[b]; rest != 0; rest &= rest - 1) {
      out[8 * b + static_cast<size_t>(__builtin_ctz(rest))] = patched[k++];
    }
  }
  return Status::Ok();
}

struct LayerCounts {
  size_t nonzero = 0;  // elements where y differs from the base
  size_t flagged = 0;  // elements the mask flags
  size_t zeros = 0;    // elements where y is 0
};

// base = v with y put in where the mask is set (the increment is 0 there), and the counts the
// encoder's choices need, in one pass. Cloned for AVX-512BW and AVX2 and picked when the
// library loads: this pass reads every element of every layer. Counted in byte-wide lanes over
// blocks of at most 255 elements: with 64-bit counters GCC widens every byte four times.
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"))) LayerCounts PrepareBase(
    const int8_t* y, const int8_t* v, const uint8_t* mask, size_t n, int8_t* base) {
  LayerCounts counts;
  for (size_t start = 0; start < n; start += 255) {
    const size_t stop = std::min(n, start + 255);
    uint8_t block_nonzero = 0, block_flagged = 0, block_zeros = 0;
    for (size_t i = start; i < stop; ++i) {  // branch-free, so that it vectorises
      const uint8_t flag = mask[i] != 0;
      const auto keep = static_cast<uint8_t>(0u - flag);  // 0xFF where flagged
      const auto b =
          static_cast<int8_t>(static_cast<uint8_t>(v[i]) ^
                              ((static_cast<uint8_t>(y[i]) ^ static_cast<uint8_t>(v[i])) & keep));
      base[i] = b;
      block_nonzero = static_cast<uint8_t>(block_nonzero + (y[i] != b));
      block_flagged = static_cast<uint8_t>(block_flagged + flag);
      block_zeros = static_cast<uint8_t>(block_zeros + (y[i] == 0));
    }
    counts.nonzero += block_nonzero;
    counts.flagged += block_flagged;
    counts.zeros += block_zeros;
  }
  return counts;
}

// Whether raw+LZ4 may be smaller than `inc_size`, judged from an eighth of the layer (four
// slices spread over it, as channels differ) before the whole layer is compressed: the tries
// that lose were most of the encoder's LZ4 time. A wrong guess costs bytes, not correctness.
bool Lz4MayBeSmaller(const int8_t* y, size_t n, size_t inc_size) {
  constexpr size_t kSlices = 4;
  const size_t slice = n / (8 * kSlices);
  if (slice < 512) return true;  // small layers: the full try is cheap
  std::string sample;
  for (size_t s = 0; s < kSlices; ++s) {
    AppendLz4(reinterpret_cast<const char*>(y + s * (n / kSlices)), slice, &sample);
  }
  const size_t estimate = sample.size() * n / (slice * kSlices);
  return estimate < inc_size;
}

}  // namespace

std::string EncodePatch(const int8_t* y, const uint8_t* mask, size_t n, uint32_t* count) {
  size_t flagged = 0;
  for (size_t k = 0; k < n; ++k) flagged += mask[k] != 0;
  *count = static_cast<uint32_t>(flagged);
  return EncodePatchOfCount(y, mask, n, flagged);
}

Status ApplyPatch(const std::string& patch, int8_t* out, size_t n) {
  if (patch.empty()) return Status::Corruption("patch: empty (no form byte)");
  const auto* p = reinterpret_cast<const uint8_t*>(patch.data());
  switch (p[0]) {
    case kPositions: {
      R2F_ASSIGN_OR_RETURN(SparseStreamView stream,
                           SparseStreamView::Open(patch.substr(1), n, "patch"));
      return stream.ForEach([out](uint64_t pos, uint8_t value) {
        out[pos] = static_cast<int8_t>(value);
        return Status::Ok();
      });
    }
    case kBitmap:
      return ApplyBitmap(p + 1, patch.size() - 1, out, n);
    default:
      return Status::Corruption("patch: unknown form " + std::to_string(p[0]));
  }
}

Result<EncodedLayer> EncodeExact(const int8_t* y, const int8_t* v, const uint8_t* mask, size_t n) {
  if (n > kMaxLayerElements) return EncodeRaw(y, n);  // its InvalidArgument
  // The buffer is kept per thread: a fresh 1-2 MB allocation per layer costs page faults.
  thread_local std::vector<int8_t> base;
  base.resize(n);
  const LayerCounts counts = PrepareBase(y, v, mask, n, base.data());
  // Up to an eighth non-zero a sparse stream (~2 bytes per element) is no larger than a dense
  // LZ4 block (each isolated literal costs LZ4 ~2 bytes too); only a denser one is worth
  // trying both ways.
  const IncrementFormat format =
      counts.nonzero <= n / 8 ? IncrementFormat::kSparse : IncrementFormat::kSmallest;
  R2F_ASSIGN_OR_RETURN(EncodedLayer inc, EncodeIncrement(y, base.data(), n, format));
  inc.patch = EncodePatchOfCount(y, mask, n, counts.flagged);
  inc.patched = static_cast<uint32_t>(counts.flagged);
  const size_t inc_size = inc.bytes.size() + inc.patch.size();
  // Raw is n bytes; it is only built when it wins.
  if (inc_size > n / 2 && n - counts.zeros < inc_size && Lz4MayBeSmaller(y, n, inc_size)) {
    R2F_ASSIGN_OR_RETURN(EncodedLayer raw_lz4, EncodeRaw(y, n, /*lz4=*/true));
    if (raw_lz4.bytes.size() < n && raw_lz4.bytes.size() <= inc_size) return raw_lz4;
  }
  if (inc_size < n) return inc;
  return EncodeRaw(y, n, /*lz4=*/false);
}

}  // namespace r2f
