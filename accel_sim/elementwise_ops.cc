#include "accel_sim/elementwise_ops.h"

#include <algorithm>
#include <cstring>

#include "common/ir/fixed_point.h"

#include "common/base/cpu_features.h"
#include "common/base/x86_intrinsics.h"

namespace r2f::accel {
namespace {

// Parallel loops pay off only above this many output elements.
constexpr int64_t kParallelMin = 1 << 14;

// The two common cases of AddBuffers on one chunk, in int32: sa, sb <= 16 (so
// |a*2^sa + b*2^sb| < 2^24) and out_shift = 0 (no rounding) or in [1, 31] (the rounding shift
// of RequantizeRow, (v >> s) + ((v >> (s-1)) & 1), exact for these values).
using AddChunkFn = void (*)(const int8_t*, const int8_t*, int64_t, int, int, int, int32_t, int8_t*);

void AddChunkPortable(const int8_t* a, const int8_t* b, int64_t n, int sa, int sb, int out_shift,
                      int32_t lo, int8_t* out) {
  const int s1 = out_shift > 0 ? out_shift - 1 : 0;
  for (int64_t i = 0; i < n; ++i) {
    int32_t v = a[i] * (int32_t{1} << sa) + b[i] * (int32_t{1} << sb);
    if (out_shift > 0) v = (v >> out_shift) + ((v >> s1) & 1);
    v = v < lo ? lo : v;
    v = v > 127 ? 127 : v;
    out[i] = static_cast<int8_t>(v);
  }
}

#ifdef R2F_X86
// 16 elements per step; the saturating narrow (vpmovsdb) is the clamp to 127 once v >= lo.
__attribute__((target("avx512f,avx512bw"))) void AddChunkAvx512(const int8_t* a, const int8_t* b,
                                                                int64_t n, int sa, int sb,
                                                                int out_shift, int32_t lo,
                                                                int8_t* out) {
  const __m128i ca = _mm_cvtsi32_si128(sa), cb = _mm_cvtsi32_si128(sb);
  const __m128i s = _mm_cvtsi32_si128(out_shift);
  const __m128i s1 = _mm_cvtsi32_si128(out_shift > 0 ? out_shift - 1 : 0);
  const __m512i vlo = _mm512_set1_epi32(lo), one = _mm512_set1_epi32(1);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    // Left shifts of sign-extended values: a * 2^sa exactly, as it fits int32.
    const __m512i va = _mm512_sll_epi32(
        _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i))), ca);
    const __m512i vb = _mm512_sll_epi32(
        _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i))), cb);
    __m512i v = _mm512_add_epi32(va, vb);
    if (out_shift > 0) {
      v = _mm512_add_epi32(_mm512_sra_epi32(v, s), _mm512_and_si512(_mm512_sra_epi32(v, s1), one));
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                     _mm512_cvtsepi32_epi8(_mm512_max_epi32(v, vlo)));
  }
  AddChunkPortable(a + i, b + i, n - i, sa, sb, out_shift, lo, out + i);
}
#endif

AddChunkFn ChooseAddChunk() {
#ifdef R2F_X86
  if (UsableCpuFeatures().avx512bw) return &AddChunkAvx512;
#endif
  return &AddChunkPortable;
}

// y = sat8(act(RoundShift(a*2^sa + b*2^sb, out_shift))).
void AddBuffers(const int8_t* a, const int8_t* b, int64_t n, int sa, int sb, int out_shift,
                bool relu, int8_t* out) {
  const int32_t lo = relu ? 0 : -128;
  if (sa <= 16 && sb <= 16 && out_shift >= 0 && out_shift <= 31) {
    // The common case, in chunks of the fastest kernel the CPU has.
    static const AddChunkFn chunk_fn = ChooseAddChunk();
    constexpr int64_t kChunk = 4096;
    const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for if (n > kParallelMin) schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t i0 = c * kChunk;
      chunk_fn(a + i0, b + i0, std::min(kChunk, n - i0), sa, sb, out_shift, lo, out + i0);
    }
    return;
  }
#pragma omp parallel for if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const int64_t s = a[i] * (int64_t{1} << sa) + b[i] * (int64_t{1} << sb);
    int64_t v = RoundShift(s, out_shift);
    if (v < lo) v = lo;
    out[i] = SaturateInt8(v);
  }
}

void MaxPool(const NodeInfo& in, const NodeInfo& node, int batch, const int8_t* x, int8_t* y) {
  const int c_n = static_cast<int>(in.dims[0]), ih = static_cast<int>(in.dims[1]),
            iw = static_cast<int>(in.dims[2]);
  const int oh = static_cast<int>(node.dims[1]), ow = static_cast<int>(node.dims[2]);
  const int k = node.pool_kernel, s = node.pool_stride, p = node.pool_pad;
  const int64_t planes = static_cast<int64_t>(batch) * c_n;
#pragma omp parallel for if (planes * oh * ow > kParallelMin) schedule(static)
  for (int64_t plane = 0; plane < planes; ++plane) {
    const int8_t* src = x + plane * ih * iw;
    int8_t* dst = y + plane * oh * ow;
    for (int oy = 0; oy < oh; ++oy) {
      const int y0 = std::max(0, oy * s - p), y1 = std::min(ih, oy * s - p + k);
      for (int ox = 0; ox < ow; ++ox) {
        // Only real elements take part: padding never wins.
        const int x0 = std::max(0, ox * s - p), x1 = std::min(iw, ox * s - p + k);
        int8_t m = INT8_MIN;
        for (int yy = y0; yy < y1; ++yy) {
          for (int xx = x0; xx < x1; ++xx) m = std::max(m, src[yy * iw + xx]);
        }
        dst[oy * ow + ox] = m;
      }
    }
  }
}

void AvgPool(const NodeInfo& in, const NodeInfo& node, int batch, const int8_t* x, int8_t* y) {
  const int c_n = static_cast<int>(in.dims[0]), ih = static_cast<int>(in.dims[1]),
            iw = static_cast<int>(in.dims[2]);
  const int oh = static_cast<int>(node.dims[1]), ow = static_cast<int>(node.dims[2]);
  const int k = node.pool_kernel, s = node.pool_stride;
  const int64_t planes = static_cast<int64_t>(batch) * c_n;
#pragma omp parallel for if (planes * oh * ow > kParallelMin) schedule(static)
  for (int64_t plane = 0; plane < planes; ++plane) {
    const int8_t* src = x + plane * ih * iw;
    int8_t* dst = y + plane * oh * ow;
    for (int oy = 0; oy < oh; ++oy) {
      for (int ox = 0; ox < ow; ++ox) {
        int64_t sum = 0;
        for (int yy = oy * s; yy < oy * s + k; ++yy) {
          for (int xx = ox * s; xx < ox * s + k; ++xx) sum += src[yy * iw + xx];
        }
        dst[oy * ow + ox] = SaturateInt8(RoundDiv(sum, int64_t{k} * k));
      }
    }
  }
}

void GlobalAvgPool(const NodeInfo& in, int batch, const int8_t* x, int8_t* y) {
  const int64_t hw = static_cast<int64_t>(in.dims[1]) * in.dims[2];
  const int64_t planes = static_cast<int64_t>(batch) * in.dims[0];
#pragma omp parallel for if (planes * hw > kParallelMin) schedule(static)
  for (int64_t plane = 0; plane < planes; ++plane) {
    const int8_t* src = x + plane * hw;
    int64_t sum = 0;
    for (int64_t i = 0; i < hw; ++i) sum += src[i];
    y[plane] = SaturateInt8(RoundDiv(sum, hw));
  }
}

void Concat(const std::vector<NodeInfo>& nodes, const NodeInfo& node,
            const std::vector<const int8_t*>& inputs, int batch, int8_t* y) {
  const int64_t out_per_image = node.elements;
  for (int b = 0; b < batch; ++b) {
    int8_t* dst = y + b * out_per_image;
    for (size_t j = 0; j < inputs.size(); ++j) {
      const NodeInfo& in = nodes[node.inputs[j]];
      const int8_t* src = inputs[j] + b * in.elements;
      const int shift = in.frac - node.frac;  // >= 0: the output takes the smallest frac
      if (shift == 0) {
        std::memcpy(dst, src, static_cast<size_t>(in.elements));
      } else {
        for (int64_t i = 0; i < in.elements; ++i) dst[i] = SaturateInt8(RoundShift(src[i], shift));
      }
      dst += in.elements;
    }
  }
}

void ChannelShuffle(const NodeInfo& node, int batch, const int8_t* x, int8_t* y) {
  // torch: x.view(N, g, C/g, H, W).transpose(1, 2).reshape(N, C, H, W), so output channel
  // c' = j * g + i holds input channel i * (C/g) + j.
  const int64_t c_n = node.dims[0];
  const int64_t hw = static_cast<int64_t>(node.dims[1]) * node.dims[2];
  const int64_t g = node.shuffle_groups;
  const int64_t per_group = c_n / g;
  for (int b = 0; b < batch; ++b) {
    const int8_t* src = x + b * node.elements;
    int8_t* dst = y + b * node.elements;
    for (int64_t co = 0; co < c_n; ++co) {
      const int64_t ci = (co % g) * per_group + co / g;
      std::memcpy(dst + co * hw, src + ci * hw, static_cast<size_t>(hw));
    }
  }
}

void Slice(const NodeInfo& in, const NodeInfo& node, int batch, const int8_t* x, int8_t* y) {
  const int64_t hw = static_cast<int64_t>(in.dims[1]) * in.dims[2];
  for (int b = 0; b < batch; ++b) {
    std::memcpy(y + b * node.elements, x + b * in.elements + node.slice_begin * hw,
                static_cast<size_t>(node.elements));
  }
}

}  // namespace

void QuantizeInput(const std::vector<int8_t>& lut, const NodeInfo& input, int batch,
                   const uint8_t* pixels, int8_t* out) {
  const int64_t c_n = input.dims[0];
  const int64_t hw = input.elements / c_n;
  for (int64_t plane = 0; plane < batch * c_n; ++plane) {
    const int8_t* table = lut.data() + (plane % c_n) * 256;
    const uint8_t* src = pixels + plane * hw;
    int8_t* dst = out + plane * hw;
    for (int64_t i = 0; i < hw; ++i) dst[i] = table[src[i]];
  }
}

void RunElementwiseNode(const std::vector<NodeInfo>& nodes, const NodeInfo& node,
                        const std::vector<const int8_t*>& inputs, int batch, int8_t* out) {
  const NodeInfo& in0 = nodes[node.inputs[0]];
  switch (node.op) {
    case pb::OP_ADD: {
      const NodeInfo& in1 = nodes[node.inputs[1]];
      const int m = std::max(in0.frac, in1.frac);
      AddBuffers(inputs[0], inputs[1], batch * node.elements, m - in0.frac, m - in1.frac,
                 m - node.frac, node.relu, out);
      return;
    }
    case pb::OP_MAXPOOL:
      MaxPool(in0, node, batch, inputs[0], out);
      return;
    case pb::OP_AVGPOOL:
      AvgPool(in0, node, batch, inputs[0], out);
      return;
    case pb::OP_GLOBAL_AVGPOOL:
      GlobalAvgPool(in0, batch, inputs[0], out);
      return;
    case pb::OP_CONCAT:
      Concat(nodes, node, inputs, batch, out);
      return;
    case pb::OP_CHANNEL_SHUFFLE:
      ChannelShuffle(node, batch, inputs[0], out);
      return;
    case pb::OP_FLATTEN:
      std::memcpy(out, inputs[0], static_cast<size_t>(batch * node.elements));
      return;
    case pb::OP_SLICE:
      Slice(in0, node, batch, inputs[0], out);
      return;
    default:
      return;  // MAC layers and the input never reach here (CompiledModel checked the ops)
  }
}

}  // namespace r2f::accel
