#include "accel_sim/elementwise_ops.h"

#include <algorithm>
#include <cstring>

#include "common/ir/fixed_point.h"

namespace r2f::accel {
namespace {

// Parallel loops pay off only above this many output elements.
constexpr int64_t kParallelMin = 1 << 14;

// y = sat8(act(RoundShift(a*2^sa + b*2^sb, out_shift))).
void AddBuffers(const int8_t* a, const int8_t* b, int64_t n, int sa, int sb, int out_shift,
                bool relu, int8_t* out) {
  const int32_t lo = relu ? 0 : -128;
  if (sa <= 16 && sb <= 16 && out_shift == 0) {
    // Same scale in and out (common): no rounding.
#pragma omp parallel for if (n > kParallelMin) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      int32_t v = a[i] * (int32_t{1} << sa) + b[i] * (int32_t{1} << sb);
      v = v < lo ? lo : v;
      v = v > 127 ? 127 : v;
      out[i] = static_cast<int8_t>(v);
    }
    return;
  }
  if (sa <= 16 && sb <= 16 && out_shift >= 1 && out_shift <= 31) {
    // |a*2^16 + b*2^16| < 2^24: int32 throughout; the rounding shift as in RequantizeRow.
    const int s1 = out_shift - 1;
#pragma omp parallel for if (n > kParallelMin) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const int32_t s = a[i] * (int32_t{1} << sa) + b[i] * (int32_t{1} << sb);
      int32_t v = (s >> out_shift) + ((s >> s1) & 1);
      v = v < lo ? lo : v;
      v = v > 127 ? 127 : v;
      out[i] = static_cast<int8_t>(v);
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
