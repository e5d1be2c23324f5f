#include "common/codec/increment_codec.h"

#include <lz4.h>

#include <climits>
#include <cstring>
#include <memory>
#include <vector>

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

void PutVarint32(std::string* dst, uint32_t v) {
  while (v >= 0x80) {
    dst->push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  dst->push_back(static_cast<char>(v));
}

// Reads a varint from [*p, end) and advances *p; false if truncated or wider than 32 bits.
bool GetVarint32(const uint8_t** p, const uint8_t* end, uint32_t* value) {
  uint32_t result = 0;
  for (int shift = 0; shift <= 28 && *p < end; shift += 7) {
    uint32_t byte = **p;
    ++*p;
    if (shift == 28 && byte > 0x0F) return false;  // would overflow uint32
    result |= (byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) {
      *value = result;
      return true;
    }
  }
  return false;
}

// Appends one LZ4 block of src[0, n) to *dst. n <= LZ4_MAX_INPUT_SIZE (checked by callers).
void AppendLz4(const char* src, size_t n, std::string* dst) {
  size_t offset = dst->size();
  int bound = LZ4_compressBound(static_cast<int>(n));
  dst->resize(offset + static_cast<size_t>(bound));
  int written = LZ4_compress_default(src, dst->data() + offset, static_cast<int>(n), bound);
  // With a LZ4_compressBound-sized destination compression cannot fail.
  dst->resize(offset + static_cast<size_t>(written > 0 ? written : 0));
}

// Decompresses one LZ4 block that must expand to exactly `size` bytes into dst.
Status DecompressExact(const char* src, size_t src_size, char* dst, size_t size, const char* what) {
  if (src_size == 0 || src_size > static_cast<size_t>(INT_MAX)) {
    return Status::Corruption(std::string(what) + ": LZ4 block of " + std::to_string(src_size) +
                              " bytes is impossible");
  }
  int got = LZ4_decompress_safe(src, dst, static_cast<int>(src_size), static_cast<int>(size));
  if (got < 0) return Status::Corruption(std::string(what) + ": malformed LZ4 block");
  if (static_cast<size_t>(got) != size) {
    return Status::Corruption(std::string(what) + ": LZ4 block holds " + std::to_string(got) +
                              " bytes, expected " + std::to_string(size));
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
  std::unique_ptr<uint8_t[]> d(new uint8_t[n]);
  for (size_t i = 0; i < n; ++i) d[i] = static_cast<uint8_t>(U8(y[i]) - U8(v[i]));
  AppendLz4(reinterpret_cast<const char*>(d.get()), n, &layer.bytes);
  return layer;
}

EncodedLayer EncodeIncrementSparse(const int8_t* y, const int8_t* v, size_t n) {
  EncodedLayer layer = MakeLayer(Encoding::kIncrementSparse, n);
  if (n == 0) return layer;
  std::string gaps;
  std::string values;
  size_t next = 0;  // position after the previous non-zero element
  auto emit = [&](size_t pos) {
    PutVarint32(&gaps, static_cast<uint32_t>(pos - next));
    values.push_back(static_cast<char>(static_cast<uint8_t>(U8(y[pos]) - U8(v[pos]))));
    next = pos + 1;
  };
  size_t i = 0;
  // Mostly equal data: compare eight elements at a time and look closer only on a mismatch.
  for (; i + 8 <= n; i += 8) {
    uint64_t a, b;
    std::memcpy(&a, y + i, 8);
    std::memcpy(&b, v + i, 8);
    if (a == b) continue;
    for (size_t j = i; j < i + 8; ++j) {
      if (y[j] != v[j]) emit(j);
    }
  }
  for (; i < n; ++i) {
    if (y[i] != v[i]) emit(i);
  }
  std::string inner;
  inner.reserve(10 + gaps.size() + values.size());
  PutVarint32(&inner, static_cast<uint32_t>(n));
  PutVarint32(&inner, static_cast<uint32_t>(values.size()));
  inner += gaps;
  inner += values;
  PutVarint32(&layer.bytes, static_cast<uint32_t>(inner.size()));
  AppendLz4(inner.data(), inner.size(), &layer.bytes);
  return layer;
}

// out[i] = base[i] + d[i] (mod 256); out may equal base or d.
void AddModulo(const int8_t* base, const uint8_t* d, int8_t* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = I8(static_cast<uint8_t>(U8(base[i]) + d[i]));
}

Status DecodeIncrementLz4(const EncodedLayer& layer, const int8_t* base, int8_t* out, size_t n) {
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

Status DecodeIncrementSparse(const EncodedLayer& layer, const int8_t* base, int8_t* out, size_t n) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(layer.bytes.data());
  const uint8_t* end = p + layer.bytes.size();
  uint32_t inner_size = 0;
  if (!GetVarint32(&p, end, &inner_size)) {
    return Status::Corruption("increment_sparse: truncated or oversized stream-size varint");
  }
  // The encoder's stream is at most 2n + 10 bytes; a larger claim is damage, and refusing it
  // keeps a corrupt header from making us allocate gigabytes.
  if (inner_size < 2 || inner_size > 2 * static_cast<uint64_t>(n) + 10) {
    return Status::Corruption("increment_sparse: stream size " + std::to_string(inner_size) +
                              " impossible for " + std::to_string(n) + " elements");
  }
  std::unique_ptr<uint8_t[]> inner(new uint8_t[inner_size]);
  R2F_RETURN_IF_ERROR(
      DecompressExact(reinterpret_cast<const char*>(p), static_cast<size_t>(end - p),
                      reinterpret_cast<char*>(inner.get()), inner_size, "increment_sparse"));
  const uint8_t* q = inner.get();
  const uint8_t* inner_end = q + inner_size;
  // The stream repeats the element count so that a sparse payload cannot pass for a layer of
  // another size (the dense forms get this check from their exact LZ4 sizes).
  uint32_t elements = 0;
  if (!GetVarint32(&q, inner_end, &elements)) {
    return Status::Corruption("increment_sparse: truncated element count");
  }
  if (elements != n) {
    return Status::Corruption("increment_sparse: stream is for " + std::to_string(elements) +
                              " elements, expected " + std::to_string(n));
  }
  uint32_t nnz = 0;
  if (!GetVarint32(&q, inner_end, &nnz)) {
    return Status::Corruption("increment_sparse: truncated non-zero count");
  }
  if (nnz > n || nnz > static_cast<size_t>(inner_end - q)) {
    return Status::Corruption("increment_sparse: " + std::to_string(nnz) +
                              " non-zero elements impossible for " + std::to_string(n) +
                              " elements in a " + std::to_string(inner_size) + "-byte stream");
  }
  // The values are the last nnz bytes; the gap varints fill exactly the bytes before them.
  const uint8_t* values = inner_end - nnz;
  if (out != base) std::memcpy(out, base, n);
  uint64_t next = 0;
  for (uint32_t k = 0; k < nnz; ++k) {
    uint32_t gap = 0;
    if (!GetVarint32(&q, values, &gap)) {
      return Status::Corruption("increment_sparse: truncated gap varint of non-zero element " +
                                std::to_string(k));
    }
    uint64_t pos = next + gap;
    if (pos >= n) {
      return Status::Corruption("increment_sparse: position " + std::to_string(pos) +
                                " out of range for " + std::to_string(n) + " elements");
    }
    if (values[k] == 0) {
      return Status::Corruption("increment_sparse: zero value stored at position " +
                                std::to_string(pos));
    }
    out[pos] = I8(static_cast<uint8_t>(U8(base[pos]) + values[k]));
    next = pos + 1;
  }
  if (q != values) {
    return Status::Corruption("increment_sparse: " + std::to_string(values - q) +
                              " stray bytes between gaps and values");
  }
  return Status::Ok();
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

Result<EncodedLayer> EncodeSmallest(const int8_t* y, const int8_t* v, size_t n, bool raw_lz4) {
  R2F_ASSIGN_OR_RETURN(EncodedLayer best, EncodeRaw(y, n, raw_lz4));
  R2F_ASSIGN_OR_RETURN(EncodedLayer inc, EncodeIncrement(y, v, n, IncrementFormat::kSmallest));
  if (inc.bytes.size() < best.bytes.size()) return inc;
  return best;
}

Status Decode(const EncodedLayer& layer, const int8_t* base, int8_t* out, size_t n) {
  if (n > kMaxLayerElements) {
    return Status::InvalidArgument("codec: expected size " + std::to_string(n) +
                                   " exceeds the limit of " + std::to_string(kMaxLayerElements));
  }
  if (layer.elements != n) {
    return Status::Corruption("codec: layer holds " + std::to_string(layer.elements) +
                              " elements, expected " + std::to_string(n));
  }
  bool known = layer.encoding == Encoding::kRaw || layer.encoding == Encoding::kRawLz4 ||
               IsIncrement(layer.encoding);
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
      return Status::Ok();
    case Encoding::kRawLz4:
      return DecompressExact(layer.bytes.data(), layer.bytes.size(), reinterpret_cast<char*>(out),
                             n, "raw_lz4");
    case Encoding::kIncrementLz4:
      return DecodeIncrementLz4(layer, base, out, n);
    case Encoding::kIncrementSparse:
      return DecodeIncrementSparse(layer, base, out, n);
  }
  return Status::Internal("codec: unreachable");
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
