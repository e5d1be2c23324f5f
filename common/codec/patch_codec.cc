#include "common/codec/patch_codec.h"

#include <vector>

#include "common/codec/sparse_stream.h"

namespace r2f {

std::string EncodePatch(const int8_t* y, const uint8_t* mask, size_t n, uint32_t* count) {
  SparseStreamWriter stream(n);
  for (size_t i = 0; i < n; ++i) {
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
  R2F_ASSIGN_OR_RETURN(EncodedLayer raw, EncodeRaw(y, n, /*lz4=*/false));
  // The reference with y where the replicas disagreed: its increment is 0 there.
  std::vector<int8_t> base(v, v + n);
  for (size_t i = 0; i < n; ++i) {
    if (mask[i] != 0) base[i] = y[i];
  }
  R2F_ASSIGN_OR_RETURN(EncodedLayer inc,
                       EncodeIncrement(y, base.data(), n, IncrementFormat::kSmallest));
  inc.patch = EncodePatch(y, mask, n, &inc.patched);
  const size_t inc_size = inc.bytes.size() + inc.patch.size();
  EncodedLayer* best = inc_size < raw.bytes.size() ? &inc : &raw;
  if (inc_size > n / 10) {
    R2F_ASSIGN_OR_RETURN(EncodedLayer raw_lz4, EncodeRaw(y, n, /*lz4=*/true));
    if (raw_lz4.bytes.size() < best->bytes.size() + best->patch.size() ||
        (raw_lz4.bytes.size() == best->bytes.size() + best->patch.size() && best == &inc)) {
      return raw_lz4;
    }
  }
  return std::move(*best);
}

}  // namespace r2f
