#include "common/codec/patch_codec.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/codec/sparse_stream.h"

namespace r2f {

std::string EncodePatch(const int8_t* y, const uint8_t* mask, size_t n, uint32_t* count) {
  SparseStreamWriter stream(n);
  size_t flagged = 0;
  for (size_t k = 0; k < n; ++k) flagged += mask[k] != 0;
  if (flagged == 0) {
    *count = 0;
    return std::string();
  }
  stream.Reserve(flagged);
  size_t i = 0;
  // Mostly unflagged: skip eight flags at a time.
  for (; i + 8 <= n; i += 8) {
    uint64_t flags;
    std::memcpy(&flags, mask + i, 8);
    if (flags == 0) continue;
    for (size_t j = i; j < i + 8; ++j) {
      if (mask[j] != 0) stream.Add(j, static_cast<uint8_t>(y[j]));
    }
  }
  for (; i < n; ++i) {
    if (mask[i] != 0) stream.Add(i, static_cast<uint8_t>(y[i]));
  }
  *count = static_cast<uint32_t>(stream.count());
  return stream.count() == 0 ? std::string() : stream.Finish();
}

Status ApplyPatch(const std::string& patch, int8_t* out, size_t n) {
  return ReadSparseStream(patch, n, "patch", [out](uint64_t pos, uint8_t value) {
    out[pos] = static_cast<int8_t>(value);
    return Status::Ok();
  });
}

Result<EncodedLayer> EncodeExact(const int8_t* y, const int8_t* v, const uint8_t* mask, size_t n) {
  if (n > kMaxLayerElements) return EncodeRaw(y, n);  // its InvalidArgument
  // The reference with y where the replicas disagreed: its increment is 0 there. The buffer
  // is kept per thread: a fresh 1-2 MB allocation per layer costs page faults.
  thread_local std::vector<int8_t> base;
  base.resize(n);
  size_t nonzero = 0;
  for (size_t i = 0; i < n; ++i) {  // branch-free, so that it vectorises
    const auto keep = static_cast<uint8_t>(0u - (mask[i] != 0));  // 0xFF where flagged
    const auto b =
        static_cast<int8_t>(static_cast<uint8_t>(v[i]) ^
                            ((static_cast<uint8_t>(y[i]) ^ static_cast<uint8_t>(v[i])) & keep));
    base[i] = b;
    nonzero += y[i] != b;
  }
  // A sparse increment (a few percent non-zero) is smaller as a sparse stream than as a dense
  // LZ4 block; only a denser one is worth trying both ways (the encoder's cost is mostly LZ4).
  const IncrementFormat format =
      nonzero <= n / 32 ? IncrementFormat::kSparse : IncrementFormat::kSmallest;
  R2F_ASSIGN_OR_RETURN(EncodedLayer inc, EncodeIncrement(y, base.data(), n, format));
  inc.patch = EncodePatch(y, mask, n, &inc.patched);
  const size_t inc_size = inc.bytes.size() + inc.patch.size();
  // Raw is n bytes; it is only built when it wins.
  if (inc_size > n / 2) {
    R2F_ASSIGN_OR_RETURN(EncodedLayer raw_lz4, EncodeRaw(y, n, /*lz4=*/true));
    if (raw_lz4.bytes.size() < n && raw_lz4.bytes.size() <= inc_size) return raw_lz4;
  }
  if (inc_size < n) return inc;
  return EncodeRaw(y, n, /*lz4=*/false);
}

}  // namespace r2f
