// A naive reference of the int8 arithmetic contract (docs/quantization.md), written as plainly
// as possible and independently of accel_sim's code: the fast executor must equal it bit for
// bit. It reads the QuantizedModel protobuf directly. Header-only, for the accel tests.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common/ir/graph.h"
#include "r2f.pb.h"

namespace r2f::accel::testing {

inline int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if (a % b != 0 && ((a < 0) != (b < 0))) --q;
  return q;
}

inline int8_t Sat8(int64_t v) {
  return static_cast<int8_t>(std::min<int64_t>(127, std::max<int64_t>(-128, v)));
}

// floor(v / 2^s + 1/2) = floor((2v + 2^s) / 2^(s+1)) for s > 0; v * 2^-s for s <= 0.
inline int64_t RefRoundShift(int64_t v, int s) {
  if (s <= 0) return v * (int64_t{1} << -s);
  return FloorDiv(2 * v + (int64_t{1} << s), int64_t{1} << (s + 1));
}

// floor(num / den + 1/2).
inline int64_t RefRoundDiv(int64_t num, int64_t den) { return FloorDiv(2 * num + den, 2 * den); }

inline int8_t RefRequant(int64_t acc, int shift, bool relu) {
  int64_t v = RefRoundShift(acc, shift);
  if (relu) v = std::max<int64_t>(0, v);
  return Sat8(v);
}

struct ConvGeometry {
  int in_c = 1, in_h = 1, in_w = 1;
  int out_c = 1;
  int kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, groups = 1;
  int OutH() const { return (in_h + 2 * ph - kh) / sh + 1; }
  int OutW() const { return (in_w + 2 * pw - kw) / sw + 1; }
  int K() const { return in_c / groups * kh * kw; }
};

// One image: acc[oc][oy][ox] = bias[oc] + sum w * x, the plain six-deep loop.
inline std::vector<int32_t> RefConvAcc(const ConvGeometry& g, const std::vector<int8_t>& in,
                                       const std::vector<int8_t>& w,
                                       const std::vector<int32_t>& bias) {
  const int oh = g.OutH(), ow = g.OutW();
  const int cin_g = g.in_c / g.groups, cout_g = g.out_c / g.groups;
  std::vector<int32_t> acc(static_cast<size_t>(g.out_c) * oh * ow);
  for (int oc = 0; oc < g.out_c; ++oc) {
    const int grp = oc / cout_g;
    for (int oy = 0; oy < oh; ++oy) {
      for (int ox = 0; ox < ow; ++ox) {
        int64_t sum = bias[oc];
        for (int ci = 0; ci < cin_g; ++ci) {
          const int c = grp * cin_g + ci;
          for (int ky = 0; ky < g.kh; ++ky) {
            for (int kx = 0; kx < g.kw; ++kx) {
              const int iy = oy * g.sh - g.ph + ky;
              const int ix = ox * g.sw - g.pw + kx;
              if (iy < 0 || iy >= g.in_h || ix < 0 || ix >= g.in_w) continue;
              const int64_t wv =
                  w[((static_cast<size_t>(oc) * cin_g + ci) * g.kh + ky) * g.kw + kx];
              sum += wv * in[(static_cast<size_t>(c) * g.in_h + iy) * g.in_w + ix];
            }
          }
        }
        acc[(static_cast<size_t>(oc) * oh + oy) * ow + ox] = static_cast<int32_t>(sum);
      }
    }
  }
  return acc;
}

inline std::vector<int8_t> RefRequantPlanes(const std::vector<int32_t>& acc, int out_c,
                                            const std::vector<int>& shifts, bool relu) {
  const size_t plane = acc.size() / out_c;
  std::vector<int8_t> out(acc.size());
  for (size_t i = 0; i < acc.size(); ++i) out[i] = RefRequant(acc[i], shifts[i / plane], relu);
  return out;
}

// Every node's output for a batch, computed from the protobuf alone. nodes[i] holds batch *
// elements values, image-major.
struct RefRun {
  pb::Graph graph;  // with shapes
  std::vector<std::vector<int8_t>> nodes;
};

inline ConvGeometry GeometryOf(const pb::Graph& graph, const pb::Node& node) {
  const pb::Shape& in = graph.nodes(node.inputs(0)).output_shape();
  ConvGeometry g;
  if (node.op() == pb::OP_CONV) {
    const pb::ConvAttr& c = node.conv();
    g.in_c = in.dims(0);
    g.in_h = in.dims(1);
    g.in_w = in.dims(2);
    g.out_c = c.out_channels();
    g.kh = c.kernel_h();
    g.kw = c.kernel_w();
    g.sh = c.stride_h();
    g.sw = c.stride_w();
    g.ph = c.pad_h();
    g.pw = c.pad_w();
    g.groups = c.groups();
  } else {
    g.in_c = in.dims(0);
    g.out_c = node.linear().out_features();
  }
  return g;
}

inline RefRun RefExecute(const pb::QuantizedModel& model, const uint8_t* pixels, int batch) {
  RefRun run;
  run.graph = model.graph();
  if (!InferShapes(&run.graph).ok()) return run;
  const pb::Graph& graph = run.graph;
  run.nodes.resize(graph.nodes_size());
  auto frac = [&](uint32_t id) { return model.activation_frac(id); };
  auto elements = [&](uint32_t id) { return NumElements(graph.nodes(id).output_shape()); };
  for (const pb::Node& node : graph.nodes()) {
    const int64_t n_out = elements(node.id());
    std::vector<int8_t>& out = run.nodes[node.id()];
    out.resize(static_cast<size_t>(n_out * batch));
    const pb::Shape& shape = node.output_shape();
    for (int b = 0; b < batch; ++b) {
      int8_t* y = out.data() + b * n_out;
      auto input = [&](int j) {
        const uint32_t id = node.inputs(j);
        return run.nodes[id].data() + b * elements(id);
      };
      switch (node.op()) {
        case pb::OP_INPUT: {
          const int64_t hw = n_out / shape.dims(0);
          for (int64_t i = 0; i < n_out; ++i) {
            const int c = static_cast<int>(i / hw);
            y[i] = static_cast<int8_t>(model.input_lut()[c * 256 + pixels[b * n_out + i]]);
          }
          break;
        }
        case pb::OP_CONV:
        case pb::OP_LINEAR: {
          const pb::QuantizedLayer* q = nullptr;
          for (const auto& l : model.layers()) {
            if (l.node_id() == node.id()) q = &l;
          }
          const ConvGeometry g = GeometryOf(graph, node);
          const int8_t* x = input(0);
          std::vector<int8_t> in(x, x + elements(node.inputs(0)));
          std::vector<int8_t> w(q->weights().begin(), q->weights().end());
          std::vector<int32_t> bias(q->bias().begin(), q->bias().end());
          std::vector<int> shifts;
          for (int c = 0; c < g.out_c; ++c) {
            shifts.push_back(frac(node.inputs(0)) + q->weight_frac(c) - frac(node.id()));
          }
          std::vector<int8_t> o = RefRequantPlanes(RefConvAcc(g, in, w, bias), g.out_c, shifts,
                                                   node.activation() == pb::ACT_RELU);
          std::copy(o.begin(), o.end(), y);
          break;
        }
        case pb::OP_ADD: {
          const int fa = frac(node.inputs(0)), fb = frac(node.inputs(1));
          const int m = std::max(fa, fb);
          for (int64_t i = 0; i < n_out; ++i) {
            const int64_t s =
                RefRoundShift(input(0)[i], fa - m) + RefRoundShift(input(1)[i], fb - m);
            y[i] = RefRequant(s, m - frac(node.id()), node.activation() == pb::ACT_RELU);
          }
          break;
        }
        case pb::OP_MAXPOOL:
        case pb::OP_AVGPOOL: {
          const pb::Shape& in = graph.nodes(node.inputs(0)).output_shape();
          const int k = node.pool().kernel(), s = node.pool().stride(), p = node.pool().pad();
          const int ih = in.dims(1), iw = in.dims(2), oh = shape.dims(1), ow = shape.dims(2);
          for (uint32_t c = 0; c < shape.dims(0); ++c) {
            for (int oy = 0; oy < oh; ++oy) {
              for (int ox = 0; ox < ow; ++ox) {
                int best = -1000;
                int64_t sum = 0;
                for (int ky = 0; ky < k; ++ky) {
                  for (int kx = 0; kx < k; ++kx) {
                    const int iy = oy * s - p + ky, ix = ox * s - p + kx;
                    if (iy < 0 || iy >= ih || ix < 0 || ix >= iw) continue;
                    const int v = input(0)[(c * ih + iy) * iw + ix];
                    best = std::max(best, v);
                    sum += v;
                  }
                }
                y[(c * oh + oy) * ow + ox] = node.op() == pb::OP_MAXPOOL
                                                 ? static_cast<int8_t>(best)
                                                 : Sat8(RefRoundDiv(sum, int64_t{k} * k));
              }
            }
          }
          break;
        }
        case pb::OP_GLOBAL_AVGPOOL: {
          const pb::Shape& in = graph.nodes(node.inputs(0)).output_shape();
          const int64_t hw = int64_t{in.dims(1)} * in.dims(2);
          for (uint32_t c = 0; c < in.dims(0); ++c) {
            int64_t sum = 0;
            for (int64_t i = 0; i < hw; ++i) sum += input(0)[c * hw + i];
            y[c] = Sat8(RefRoundDiv(sum, hw));
          }
          break;
        }
        case pb::OP_CONCAT: {
          int64_t at = 0;
          for (int j = 0; j < node.inputs_size(); ++j) {
            const int64_t n = elements(node.inputs(j));
            for (int64_t i = 0; i < n; ++i) {
              y[at + i] = Sat8(RefRoundShift(input(j)[i], frac(node.inputs(j)) - frac(node.id())));
            }
            at += n;
          }
          break;
        }
        case pb::OP_CHANNEL_SHUFFLE: {
          // torch: x.view(N, g, C/g, H, W).transpose(1, 2).reshape(N, C, H, W)
          const int g = node.shuffle().groups();
          const int c_n = shape.dims(0);
          const int64_t hw = n_out / c_n;
          const int per = c_n / g;
          // view: A[i][j] = x[(i * per + j)]; transpose: B[j][i] = A[i][j]; reshape: flat B.
          for (int j = 0; j < per; ++j) {
            for (int i = 0; i < g; ++i) {
              const int out_c = j * g + i, in_c = i * per + j;
              for (int64_t p = 0; p < hw; ++p) y[out_c * hw + p] = input(0)[in_c * hw + p];
            }
          }
          break;
        }
        case pb::OP_FLATTEN:
          std::copy(input(0), input(0) + n_out, y);
          break;
        case pb::OP_SLICE: {
          const pb::Shape& in = graph.nodes(node.inputs(0)).output_shape();
          const int64_t hw = int64_t{in.dims(1)} * in.dims(2);
          std::copy(input(0) + node.slice().begin() * hw, input(0) + node.slice().end() * hw, y);
          break;
        }
        default:
          break;
      }
    }
  }
  return run;
}

// Full-range int8 with the extremes over-represented: exactness bugs live at -128 and 127.
inline int8_t RandomInt8(std::mt19937_64& rng) {
  const int pick = static_cast<int>(rng() % 8);
  if (pick == 0) return -128;
  if (pick == 1) return 127;
  return static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
}

inline std::vector<uint8_t> RandomPixels(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> px(n);
  for (auto& p : px) p = static_cast<uint8_t>(rng() % 256);
  return px;
}

}  // namespace r2f::accel::testing
