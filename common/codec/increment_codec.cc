#include "common/codec/increment_codec.h"

#include <lz4.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>
#include <vector>

#include "common/base/byte_flags.h"
#include "common/base/uninitialized_vector.h"
#include "common/codec/flag_pack.h"
#include "common/codec/lz4_block.h"
#include "common/codec/patch_codec.h"
#include "common/codec/sparse_stream.h"

namespace r2f {

namespace {

static_assert(2 * kMaxLayerElements + 10 <= LZ4_MAX_INPUT_SIZE,
              "the largest sparse stream must fit one LZ4 block");

// Bytes are handled as uint8_t so that differences wrap modulo 256 without signed overflow.
inline uint8_t U8(int8_t v) { return static_cast<uint8_t>(v); }
inline int8_t I8(uint8_t v) { return static_cast<int8_t>(v); }

Status CheckEncodeSize(size_t n) {
  if (n > kMaxLayerElements) {
    return Status::InvalidArgument("codec: layer of " + std::to_string(n) +
                                   " elements exceeds the limit of " +
                                   std::to_string(kMaxLayerElements));
  }
  return Status::Ok();
}

EncodedLayer MakeLayer(Encoding encoding, size_t n) {
  EncodedLayer layer;
  layer.encoding = encoding;
  layer.elements = static_cast<uint32_t>(n);
  return layer;
}

EncodedLayer EncodeIncrementLz4(const int8_t* y, const int8_t* v, size_t n) {
  EncodedLayer layer = MakeLayer(Encoding::kIncrementLz4, n);
  if (n == 0) return layer;
  thread_local UninitializedVector<uint8_t> d;  // kept: a fresh buffer per layer costs page faults
  d.resize(n);
  uint8_t* const out = d.data();  // a local pointer: through the vector GCC does not vectorise
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(U8(y[i]) - U8(v[i]));
  AppendLz4(reinterpret_cast<const char*>(out), n, &layer.bytes);
  return layer;
}

EncodedLayer EncodeIncrementSparse(const int8_t* y, const int8_t* v, size_t n) {
  // The differing positions as a bitmap first (64 per instruction where AVX-512 is there), then
  // only those visited.
  thread_local UninitializedVector<uint8_t> differ;
  differ.resize(BitmapBytes(n));
  const size_t count = DifferBitmap(y, v, n, differ.data());
  return EncodeIncrementSparseAt(y, v, differ.data(), count, n);
}

// out[i] = base[i] + d[i] (mod 256); out may equal base or d.
void AddModulo(const int8_t* base, const uint8_t* d, int8_t* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = I8(static_cast<uint8_t>(U8(base[i]) + d[i]));
}

Status DecodeIncrementLz4(const EncodedLayerView& layer, const int8_t* base, int8_t* out,
                          size_t n) {
  // Decompress straight into out unless out is the base we still need.
  std::unique_ptr<uint8_t[]> scratch;
  uint8_t* d = reinterpret_cast<uint8_t*>(out);
  if (out == base) {
    scratch.reset(new uint8_t[n]);
    d = scratch.get();
  }
  R2F_RETURN_IF_ERROR(DecompressExact(layer.bytes.data(), layer.bytes.size(),
                                      reinterpret_cast<char*>(d), n, "increment_lz4"));
  AddModulo(base, d, out, n);
  return Status::Ok();
}

Status DecodeIncrementSparse(const EncodedLayerView& layer, const int8_t* base, int8_t* out,
                             size_t n) {
  R2F_ASSIGN_OR_RETURN(SparseStreamView stream,
                       SparseStreamView::Open(layer.bytes, n, "increment_sparse"));
  // The writer stores only non-zero increments.
  const void* zero = std::memchr(stream.values(), 0, stream.count());
  if (zero != nullptr) {
    return Status::Corruption("increment_sparse: zero value stored for non-zero element " +
                              std::to_string(static_cast<const uint8_t*>(zero) - stream.values()));
  }
  if (out != base) std::memcpy(out, base, n);
  return stream.ForEach([base, out](uint64_t pos, uint8_t value) {
    out[pos] = I8(static_cast<uint8_t>(U8(base[pos]) + value));
  });
}

Status DecodeRawZeroMap(const EncodedLayerView& layer, int8_t* out, size_t n) {
  const auto* p = reinterpret_cast<const uint8_t*>(layer.bytes.data());
  const uint8_t* end = p + layer.bytes.size();
  R2F_RETURN_IF_ERROR(ReadElementCount(&p, end, n, "raw_zero_map"));
  return ReadZeroMap(p, static_cast<size_t>(end - p), n, "raw_zero_map", out);
}

}  // namespace

const char* EncodingName(Encoding encoding) {
  switch (encoding) {
    case Encoding::kRaw:
      return "raw";
    case Encoding::kRawLz4:
      return "raw_lz4";
    case Encoding::kIncrementLz4:
      return "increment_lz4";
    case Encoding::kIncrementSparse:
      return "increment_sparse";
    case Encoding::kRawZeroMap:
      return "raw_zero_map";
  }
  return "unknown";
}

Result<EncodedLayer> EncodeRaw(const int8_t* y, size_t n, bool lz4) {
  R2F_RETURN_IF_ERROR(CheckEncodeSize(n));
  EncodedLayer layer = MakeLayer(lz4 ? Encoding::kRawLz4 : Encoding::kRaw, n);
  if (n == 0) return layer;
  if (lz4) {
    AppendLz4(reinterpret_cast<const char*>(y), n, &layer.bytes);
  } else {
    layer.bytes.assign(reinterpret_cast<const char*>(y), n);
  }
  return layer;
}

Result<EncodedLayer> EncodeRawZeroMap(const int8_t* y, size_t n) {
  R2F_RETURN_IF_ERROR(CheckEncodeSize(n));
  EncodedLayer layer = MakeLayer(Encoding::kRawZeroMap, n);
  if (n == 0) return layer;
  PutVarint32(&layer.bytes, static_cast<uint32_t>(n));
  AppendZeroMap(y, n, &layer.bytes);
  return layer;
}

Result<EncodedLayer> EncodeIncrement(const int8_t* y, const int8_t* v, size_t n,
                                     IncrementFormat format) {
  R2F_RETURN_IF_ERROR(CheckEncodeSize(n));
  switch (format) {
    case IncrementFormat::kLz4:
      return EncodeIncrementLz4(y, v, n);
    case IncrementFormat::kSparse:
      return EncodeIncrementSparse(y, v, n);
    case IncrementFormat::kSmallest: {
      EncodedLayer dense = EncodeIncrementLz4(y, v, n);
      EncodedLayer sparse = EncodeIncrementSparse(y, v, n);
      return sparse.bytes.size() < dense.bytes.size() ? std::move(sparse) : std::move(dense);
    }
  }
  return Status::InvalidArgument("codec: unknown increment format");
}

EncodedLayer EncodeIncrementSparseAt(const int8_t* y, const int8_t* v, const uint8_t* differ,
                                     size_t count, size_t n) {
  EncodedLayer layer = MakeLayer(Encoding::kIncrementSparse, n);
  if (n == 0) return layer;
  layer.bytes = EncodeSparseDifferences(differ, y, v, count, n);
  return layer;
}

Result<EncodedLayer> EncodeSmallest(const int8_t* y, const int8_t* v, size_t n, bool raw_lz4) {
  R2F_ASSIGN_OR_RETURN(EncodedLayer best, EncodeRaw(y, n, raw_lz4));
  R2F_ASSIGN_OR_RETURN(EncodedLayer inc, EncodeIncrement(y, v, n, IncrementFormat::kSmallest));
  if (inc.bytes.size() < best.bytes.size()) return inc;
  return best;
}

Status Decode(const EncodedLayerView& layer, const int8_t* base, int8_t* out, size_t n) {
  if (n > kMaxLayerElements) {
    return Status::InvalidArgument("codec: expected size " + std::to_string(n) +
                                   " exceeds the limit of " + std::to_string(kMaxLayerElements));
  }
  if (layer.elements != n) {
    return Status::Corruption("codec: layer holds " + std::to_string(layer.elements) +
                              " elements, expected " + std::to_string(n));
  }
  bool known = layer.encoding == Encoding::kRaw || layer.encoding == Encoding::kRawLz4 ||
               layer.encoding == Encoding::kRawZeroMap || IsIncrement(layer.encoding);
  if (!known) {
    return Status::Corruption("codec: unknown encoding " +
                              std::to_string(static_cast<int>(layer.encoding)));
  }
  if (n == 0) {
    if (!layer.bytes.empty()) {
      return Status::Corruption("codec: empty layer with " + std::to_string(layer.bytes.size()) +
                                " payload bytes");
    }
    return Status::Ok();
  }
  if (out == nullptr) return Status::InvalidArgument("codec: no output buffer");
  if (IsIncrement(layer.encoding) && base == nullptr) {
    return Status::InvalidArgument(std::string("codec: ") + EncodingName(layer.encoding) +
                                   " needs the reference values as base");
  }
  switch (layer.encoding) {
    case Encoding::kRaw:
      if (layer.bytes.size() != n) {
        return Status::Corruption("raw: " + std::to_string(layer.bytes.size()) + " bytes for " +
                                  std::to_string(n) + " elements");
      }
      std::memcpy(out, layer.bytes.data(), n);
      break;
    case Encoding::kRawLz4:
      R2F_RETURN_IF_ERROR(DecompressExact(layer.bytes.data(), layer.bytes.size(),
                                          reinterpret_cast<char*>(out), n, "raw_lz4"));
      break;
    case Encoding::kIncrementLz4:
      R2F_RETURN_IF_ERROR(DecodeIncrementLz4(layer, base, out, n));
      break;
    case Encoding::kIncrementSparse:
      R2F_RETURN_IF_ERROR(DecodeIncrementSparse(layer, base, out, n));
      break;
    case Encoding::kRawZeroMap:
      R2F_RETURN_IF_ERROR(DecodeRawZeroMap(layer, out, n));
      break;
  }
  return layer.patch.empty() ? Status::Ok() : ApplyPatch(layer.patch, out, n);
}

size_t CountDifferences(const int8_t* y, const int8_t* v, size_t n) {
  size_t count = 0;
  for (size_t i = 0; i < n; ++i) count += y[i] != v[i];
  return count;
}

double Similarity(const int8_t* y, const int8_t* v, size_t n) {
  if (n == 0) return 1.0;
  return static_cast<double>(n - CountDifferences(y, v, n)) / static_cast<double>(n);
}

}  // namespace r2f
