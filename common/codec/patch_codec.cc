#include "common/codec/patch_codec.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "common/base/uninitialized_vector.h"
#include "common/codec/flag_pack.h"
#include "common/codec/lz4_block.h"
#include "common/codec/sparse_stream.h"

namespace r2f {

namespace {

enum PatchForm : uint8_t { kPositions = 0, kBitmap = 1 };

// A patch of the `count` values (in position order) flagged in `bitmap`, a bitmap of n.
std::string EncodePositions(const uint8_t* bitmap, const int8_t* values, size_t n, size_t count) {
  std::string out(1, static_cast<char>(kPositions));
  out += EncodeSparseStream(bitmap, values, count, n);
  return out;
}

// The bitmap form: varint(n), the patch bitmap, then the zero map (flag_pack.h) of the
// `count` patched values. Half or more of them are ReLU zeros, so they cost a bit each.
std::string EncodeBitmap(const uint8_t* bitmap, const int8_t* values, size_t n, size_t count) {
  std::string out(1, static_cast<char>(kBitmap));
  PutVarint32(&out, static_cast<uint32_t>(n));
  out.append(reinterpret_cast<const char*>(bitmap), BitmapBytes(n));
  AppendZeroMap(values, count, &out);
  return out;
}

std::string EncodePatchOf(const uint8_t* bitmap, const int8_t* values, size_t n, size_t count) {
  if (count == 0) return std::string();
  return count > n / 8 ? EncodeBitmap(bitmap, values, n, count)
                       : EncodePositions(bitmap, values, n, count);
}

Status ApplyBitmap(const uint8_t* p, size_t size, int8_t* out, size_t n) {
  const uint8_t* end = p + size;
  R2F_RETURN_IF_ERROR(ReadElementCount(&p, end, n, "patch: bitmap"));
  const size_t map_bytes = BitmapBytes(n);
  if (static_cast<size_t>(end - p) < map_bytes) {
    return Status::Corruption("patch: " + std::to_string(end - p) + " bytes for a bitmap of " +
                              std::to_string(n) + " elements");
  }
  R2F_ASSIGN_OR_RETURN(const size_t count, CountFlags(p, n, "patch: bitmap"));
  // The patched values with their zeros put back, then put in place.
  thread_local UninitializedVector<int8_t> patched;
  patched.resize(count);
  R2F_RETURN_IF_ERROR(ReadZeroMap(p + map_bytes, static_cast<size_t>(end - p) - map_bytes, count,
                                  "patch", patched.data()));
  ScatterFlagged(p, patched.data(), count, n, out);
  return Status::Ok();
}

// Whether raw+LZ4 may be smaller than `other_size`, judged from an eighth of the layer (four
// slices spread over it, as channels differ) before the whole layer is compressed: the tries
// that lose were most of the encoder's LZ4 time. A wrong guess costs bytes, not correctness.
bool Lz4MayBeSmaller(const int8_t* y, size_t n, size_t other_size) {
  constexpr size_t kSlices = 4;
  const size_t slice = n / (8 * kSlices);
  if (slice < 512) return true;  // small layers: the full try is cheap
  std::string sample;
  for (size_t s = 0; s < kSlices; ++s) {
    AppendLz4(reinterpret_cast<const char*>(y + s * (n / kSlices)), slice, &sample);
  }
  const size_t estimate = sample.size() * n / (slice * kSlices);
  return estimate < other_size;
}

}  // namespace

std::string EncodePatch(const int8_t* y, const uint8_t* mask, size_t n, uint32_t* count) {
  std::vector<uint8_t> bitmap(BitmapBytes(n));
  std::vector<int8_t> values(n + kPackSlack);
  const size_t flagged = PackFlagged(y, mask, n, bitmap.data(), values.data());
  *count = static_cast<uint32_t>(flagged);
  return EncodePatchOf(bitmap.data(), values.data(), n, flagged);
}

Status ApplyPatch(std::string_view patch, int8_t* out, size_t n) {
  if (patch.empty()) return Status::Corruption("patch: empty (no form byte)");
  const auto* p = reinterpret_cast<const uint8_t*>(patch.data());
  switch (p[0]) {
    case kPositions: {
      R2F_ASSIGN_OR_RETURN(SparseStreamView stream,
                           SparseStreamView::Open(patch.substr(1), n, "patch"));
      return stream.ForEach(
          [out](uint64_t pos, uint8_t value) { out[pos] = static_cast<int8_t>(value); });
    }
    case kBitmap:
      return ApplyBitmap(p + 1, patch.size() - 1, out, n);
    default:
      return Status::Corruption("patch: unknown form " + std::to_string(p[0]));
  }
}

Result<EncodedLayer> EncodeExact(const int8_t* y, const int8_t* v, const uint8_t* mask, size_t n,
                                 ExactScan* scan_out) {
  if (n > kMaxLayerElements) return EncodeRaw(y, n);  // its InvalidArgument
  // The buffers are kept per thread: fresh 1-2 MB allocations per layer cost page faults.
  thread_local UninitializedVector<uint8_t> differ, flagged;
  thread_local UninitializedVector<int8_t> values;
  differ.resize(BitmapBytes(n));
  flagged.resize(BitmapBytes(n));
  values.resize(n + kPackSlack);
  const ExactScan scan = ScanExact(y, v, mask, n, differ.data(), flagged.data(), values.data());
  if (scan_out != nullptr) *scan_out = scan;
  const size_t zero_map_size = 5 + BitmapBytes(n) + (n - scan.zeros);  // at most; no build
  // A dense patch's size is known from the counts too (the bitmap form), and each non-zero
  // increment costs about a byte at least: where raw without zeros is smaller than that, the
  // increment and the patch are not built at all (at 1e-4, the ReLU layers that go raw).
  const bool dense_patch = scan.flagged > n / 8;
  const size_t patch_floor = BitmapBytes(n) + BitmapBytes(scan.flagged) + scan.flagged_nonzero;
  EncodedLayer inc;
  size_t inc_size = std::numeric_limits<size_t>::max();
  if (!dense_patch || patch_floor + scan.differ < zero_map_size) {
    // Up to an eighth non-zero a sparse stream (~2 bytes per element) is no larger than a dense
    // LZ4 block (each isolated literal costs LZ4 ~2 bytes too); only a denser one is worth
    // trying both ways, against the vote with y put in where the replicas disagreed.
    if (scan.differ <= n / 8) {
      inc = EncodeIncrementSparseAt(y, v, differ.data(), scan.differ, n);
    } else {
      thread_local std::vector<int8_t> base;
      base.assign(v, v + n);
      ScatterFlagged(flagged.data(), values.data(), scan.flagged, n, base.data());
      R2F_ASSIGN_OR_RETURN(inc, EncodeIncrement(y, base.data(), n, IncrementFormat::kSmallest));
    }
    inc.patch = EncodePatchOf(flagged.data(), values.data(), n, scan.flagged);
    inc.patched = static_cast<uint32_t>(scan.flagged);
    inc_size = inc.bytes.size() + inc.patch.size();
  }
  // Raw is n bytes. raw+LZ4 beats the others only on long runs (whole dead channels): it is
  // not tried where it could not save a 32nd of the best form even if every byte inside a run
  // were free (a smaller gain is not worth the LZ4 pass), and elsewhere only where LZ4 of a
  // sample predicts a win.
  const size_t best = std::min({inc_size, zero_map_size, n});
  if (n - scan.run_bytes < best - best / 32 && Lz4MayBeSmaller(y, n, best)) {
    R2F_ASSIGN_OR_RETURN(EncodedLayer raw_lz4, EncodeRaw(y, n, /*lz4=*/true));
    if (raw_lz4.bytes.size() < n && raw_lz4.bytes.size() <= best) return raw_lz4;
  }
  if (inc_size <= zero_map_size && inc_size < n) return inc;
  if (zero_map_size < n) return EncodeRawZeroMap(y, n);
  return EncodeRaw(y, n, /*lz4=*/false);
}

}  // namespace r2f
