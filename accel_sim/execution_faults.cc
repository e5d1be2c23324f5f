#include "accel_sim/execution_faults.h"

#include <algorithm>
#include <cstring>

namespace r2f::accel {
namespace {

// Flips of one site merged per element: XOR masks, so that a bit flipped twice is unchanged.
struct MaskedElement {
  uint32_t element;
  uint32_t mask;
};

void MergeFlips(const std::vector<BitFlip>& flips, std::vector<MaskedElement>* out) {
  out->clear();
  for (const BitFlip& f : flips) out->push_back({f.element, uint32_t{1} << f.bit});
  auto by_element = [](const MaskedElement& a, const MaskedElement& b) {
    return a.element < b.element;
  };
  // Sampled plans come in increasing bit order already; hand-made ones may not.
  if (!std::is_sorted(out->begin(), out->end(), by_element)) {
    std::sort(out->begin(), out->end(), by_element);
  }
  size_t w = 0;
  for (size_t r = 0; r < out->size(); ++r) {
    if (w > 0 && (*out)[w - 1].element == (*out)[r].element) {
      (*out)[w - 1].mask ^= (*out)[r].mask;
    } else {
      (*out)[w++] = (*out)[r];
    }
  }
  out->resize(w);
}

Status CheckFlips(const MacLayer& L, const FaultPlan& plan) {
  const LayerExposure exposure = L.Exposure();
  for (int s = 0; s < kNumFaultSites; ++s) {
    const auto site = static_cast<FaultSite>(s);
    for (const BitFlip& f : plan.at(site)) {
      if (f.element >= exposure.elements[s] || f.bit >= static_cast<uint32_t>(kSiteBitWidth[s])) {
        return Status::InvalidArgument(
            "layer " + std::to_string(L.node_id) + " '" + L.name + "': " + FaultSiteName(site) +
            " flip (element " + std::to_string(f.element) + ", bit " + std::to_string(f.bit) +
            ") outside " + std::to_string(exposure.elements[s]) + " elements of " +
            std::to_string(kSiteBitWidth[s]) + " bits");
      }
    }
  }
  return Status::Ok();
}

int32_t FlipDelta(int8_t v, uint32_t mask) {
  return static_cast<int8_t>(v ^ static_cast<int>(mask)) - v;
}

// The outputs [lo, hi) along one axis whose window reads kernel offset `kernel` inside the
// input: 0 <= o * stride + kernel - pad < in.
void ValidOutputs(int out, int in, int stride, int pad, int kernel, int32_t* lo, int32_t* hi) {
  const int a = pad - kernel;
  *lo = std::min(a <= 0 ? 0 : (a + stride - 1) / stride, out);
  const int b = in - 1 + pad - kernel;
  *hi = std::max(*lo, std::min(b < 0 ? 0 : b / stride + 1, out));
}

// The output position whose window reads input (iy, ix) at kernel offset (ky, kx), if any.
bool OutputOf(const MacLayer& L, int iy, int ix, int ky, int kx, int* oy, int* ox) {
  const int ny = iy + L.pad_h - ky;
  const int nx = ix + L.pad_w - kx;
  if (ny < 0 || nx < 0 || ny % L.stride_h != 0 || nx % L.stride_w != 0) return false;
  *oy = ny / L.stride_h;
  *ox = nx / L.stride_w;
  return *oy < L.out_h && *ox < L.out_w;
}

}  // namespace

Status ExecutionFaults::Build(const MacLayer& L, const int8_t* input, const FaultPlan& plan,
                              int8_t* faulty_input) {
  any_ = false;
  layer_ = &L;
  input_ = input;
  weight_flips_.clear();
  input_flips_.clear();
  taps_.clear();
  tap_weights_.clear();
  points_.clear();
  special_.clear();
  R2F_RETURN_IF_ERROR(CheckFlips(L, plan));
  if (plan.Empty()) return Status::Ok();
  any_ = true;

  const int64_t hw = L.out_spatial();
  const int khw = L.kernel_h * L.kernel_w;
  const int64_t in_plane = static_cast<int64_t>(L.in_h) * L.in_w;
  thread_local std::vector<MaskedElement> weights, inputs, hidden, outputs;
  MergeFlips(plan.at(FaultSite::kWeights), &weights);
  MergeFlips(plan.at(FaultSite::kInputs), &inputs);
  MergeFlips(plan.at(FaultSite::kHidden), &hidden);
  MergeFlips(plan.at(FaultSite::kOutputs), &outputs);
  if (faulty_input != nullptr) {
    // The GEMM reads the flipped input: w * x' covers the input flips, and the weight flips'
    // deltas below read x' too, so (w' - w) * x' + w * x' = w' * x' without cross terms.
    std::memcpy(faulty_input, input, static_cast<size_t>(L.in_elements()));
    for (const MaskedElement& f : inputs) {
      faulty_input[f.element] =
          static_cast<int8_t>(faulty_input[f.element] ^ static_cast<int>(f.mask));
    }
    input_ = faulty_input;
    inputs.clear();
  }

  // Weight flips, by output channel (their element order).
  weight_begin_.assign(static_cast<size_t>(L.out_c) + 1, 0);
  for (const MaskedElement& f : weights) {
    const int oc = static_cast<int>(f.element / L.k);
    const int kk = static_cast<int>(f.element % L.k);
    WeightFlip w;
    w.mask = f.mask;
    w.kk = kk;
    w.in_channel = oc / L.group_out_c * L.group_in_c + kk / khw;
    w.ky = (kk % khw) / L.kernel_w;
    w.kx = kk % L.kernel_w;
    ValidOutputs(L.out_h, L.in_h, L.stride_h, L.pad_h, w.ky, &w.oy_lo, &w.oy_hi);
    ValidOutputs(L.out_w, L.in_w, L.stride_w, L.pad_w, w.kx, &w.ox_lo, &w.ox_hi);
    weight_flips_.push_back(w);
    ++weight_begin_[oc + 1];
  }
  for (int c = 0; c < L.out_c; ++c) weight_begin_[c + 1] += weight_begin_[c];

  // Input flips, by group (their element order), each with the outputs that read it.
  input_begin_.assign(static_cast<size_t>(L.groups) + 1, 0);
  for (const MaskedElement& f : inputs) {
    const int c = static_cast<int>(f.element / in_plane);
    const int iy = static_cast<int>((f.element % in_plane) / L.in_w);
    const int ix = static_cast<int>(f.element % L.in_w);
    InputFlip in;
    in.dx = FlipDelta(input[f.element], f.mask);
    in.in_channel_in_group = c % L.group_in_c;
    in.oy_min = L.out_h;
    in.oy_max = -1;
    in.tap_begin = static_cast<uint32_t>(taps_.size());
    for (int ky = 0; ky < L.kernel_h; ++ky) {
      for (int kx = 0; kx < L.kernel_w; ++kx) {
        int oy, ox;
        if (!OutputOf(L, iy, ix, ky, kx, &oy, &ox)) continue;
        taps_.push_back({oy, ox});
        const int8_t* w = L.weights_t.data() + (static_cast<int64_t>(c / L.group_in_c) * L.k +
                                                (c % L.group_in_c) * khw + ky * L.kernel_w + kx) *
                                                   L.group_out_c;
        tap_weights_.insert(tap_weights_.end(), w, w + L.group_out_c);
        in.oy_min = std::min(in.oy_min, oy);
        in.oy_max = std::max(in.oy_max, oy);
      }
    }
    in.tap_end = static_cast<uint32_t>(taps_.size());
    if (in.tap_begin == in.tap_end) continue;  // no window reads it (strided layers)
    input_flips_.push_back(in);
    ++input_begin_[c / L.group_in_c + 1];
  }
  for (int g = 0; g < L.groups; ++g) input_begin_[g + 1] += input_begin_[g];

  // Cross terms: a flipped weight reading a flipped input.
  point_begin_.assign(static_cast<size_t>(L.out_c) + 1, 0);
  if (!inputs.empty()) {
    auto by_element = [](const MaskedElement& m, uint32_t v) { return m.element < v; };
    for (int oc = 0; oc < L.out_c; ++oc) {
      for (uint32_t i = weight_begin_[oc]; i < weight_begin_[oc + 1]; ++i) {
        const WeightFlip& w = weight_flips_[i];
        auto it = std::lower_bound(inputs.begin(), inputs.end(),
                                   static_cast<uint32_t>(w.in_channel * in_plane), by_element);
        for (; it != inputs.end() && it->element < (w.in_channel + 1) * in_plane; ++it) {
          int oy, ox;
          const int iy = static_cast<int>((it->element % in_plane) / L.in_w);
          const int ix = static_cast<int>(it->element % L.in_w);
          if (!OutputOf(L, iy, ix, w.ky, w.kx, &oy, &ox)) continue;
          const int32_t dx = FlipDelta(input[it->element], it->mask);
          const int32_t dw = FlipDelta(L.weights[static_cast<int64_t>(oc) * L.k + w.kk], w.mask);
          points_.push_back({oy * L.out_w + ox, static_cast<uint32_t>(dw * dx)});
          ++point_begin_[oc + 1];
        }
      }
    }
  }
  for (int c = 0; c < L.out_c; ++c) point_begin_[c + 1] += point_begin_[c];

  // Hidden and output flips, merged per element.
  size_t h = 0, o = 0;
  while (h < hidden.size() || o < outputs.size()) {
    const uint32_t he = h < hidden.size() ? hidden[h].element : UINT32_MAX;
    const uint32_t oe = o < outputs.size() ? outputs[o].element : UINT32_MAX;
    Special sp{std::min(he, oe), 0, 0};
    if (he == sp.element) sp.hidden_mask = hidden[h++].mask;
    if (oe == sp.element) sp.output_mask = static_cast<uint8_t>(outputs[o++].mask);
    special_.push_back(sp);
  }
  special_begin_.assign(static_cast<size_t>(L.out_c) + 1, 0);
  for (const Special& sp : special_) ++special_begin_[sp.element / hw + 1];
  for (int c = 0; c < L.out_c; ++c) special_begin_[c + 1] += special_begin_[c];

  affected_.assign(static_cast<size_t>(L.out_c), 0);
  for (int c = 0; c < L.out_c; ++c) {
    const int g = c / L.group_out_c;
    affected_[c] = weight_begin_[c] != weight_begin_[c + 1] ||
                   input_begin_[g] != input_begin_[g + 1] ||
                   special_begin_[c] != special_begin_[c + 1];
  }
  return Status::Ok();
}

bool ExecutionFaults::Touches(int c, int oy0, int oy1) const {
  if (!any_) return false;
  if (weight_begin_[c] != weight_begin_[c + 1]) return true;
  const int g = c / layer_->group_out_c;
  for (uint32_t i = input_begin_[g]; i < input_begin_[g + 1]; ++i) {
    if (input_flips_[i].oy_max >= oy0 && input_flips_[i].oy_min < oy1) return true;
  }
  return false;
}

void ExecutionFaults::AddDeltas(int c, int oy0, int oy1, uint32_t* row) const {
  const MacLayer& L = *layer_;
  const int64_t in_plane = static_cast<int64_t>(L.in_h) * L.in_w;
  // Weight flips: (w' - w) * x over the rows' valid windows.
  for (uint32_t i = weight_begin_[c]; i < weight_begin_[c + 1]; ++i) {
    const WeightFlip& w = weight_flips_[i];
    const int32_t dw = FlipDelta(L.CachedWeight(c, w.kk), w.mask);
    const int8_t* plane = input_ + w.in_channel * in_plane;
    const int offset = w.kx - L.pad_w;
    for (int oy = std::max(oy0, w.oy_lo); oy < std::min(oy1, w.oy_hi); ++oy) {
      const int8_t* src = plane + static_cast<int64_t>(oy * L.stride_h + w.ky - L.pad_h) * L.in_w;
      uint32_t* dst = row + static_cast<int64_t>(oy - oy0) * L.out_w;
      if (L.stride_w == 1) {
        const int8_t* s = src + offset;
        for (int ox = w.ox_lo; ox < w.ox_hi; ++ox) dst[ox] += static_cast<uint32_t>(dw * s[ox]);
      } else {
        for (int ox = w.ox_lo; ox < w.ox_hi; ++ox) {
          dst[ox] += static_cast<uint32_t>(dw * src[ox * L.stride_w + offset]);
        }
      }
    }
  }
  // Cross terms.
  const int64_t first = static_cast<int64_t>(oy0) * L.out_w,
                last = static_cast<int64_t>(oy1) * L.out_w;
  for (uint32_t i = point_begin_[c]; i < point_begin_[c + 1]; ++i) {
    if (points_[i].pos >= first && points_[i].pos < last)
      row[points_[i].pos - first] += points_[i].value;
  }
  // Input flips of the channel's group: w * (x' - x) at every output reading them.
  const int g = c / L.group_out_c;
  const int n = c % L.group_out_c;
  for (uint32_t i = input_begin_[g]; i < input_begin_[g + 1]; ++i) {
    const InputFlip& in = input_flips_[i];
    if (in.oy_max < oy0 || in.oy_min >= oy1) continue;
    for (uint32_t t = in.tap_begin; t < in.tap_end; ++t) {
      const Tap& tap = taps_[t];
      if (tap.oy < oy0 || tap.oy >= oy1) continue;
      const int32_t w = tap_weights_[static_cast<size_t>(t) * L.group_out_c + n];
      row[static_cast<int64_t>(tap.oy - oy0) * L.out_w + tap.ox] +=
          static_cast<uint32_t>(w * in.dx);
    }
  }
}

}  // namespace r2f::accel
