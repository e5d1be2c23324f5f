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

// Merges `flips` into `out`; false, with `out` unspecified, if a flip lies outside [0,
// elements) x [0, width) (CheckFlips then names it).
bool MergeFlips(const std::vector<BitFlip>& flips, uint64_t elements, uint32_t width,
                UninitializedVector<MaskedElement>* out) {
  out->resize(flips.size());
  // Sampled plans come in increasing bit order: one pass merges them. Hand-made plans may
  // come in any order: sorted and merged again below. Written by index, not push_back: the
  // loop is per flip.
  MaskedElement* const first = out->data();
  MaskedElement* last = first;  // one past the last merged element
  bool sorted = true, in_range = true;
  for (const BitFlip& f : flips) {
    in_range &= f.element < elements && f.bit < width;
    const uint32_t mask = uint32_t{1} << (f.bit & 31);
    if (last != first && last[-1].element == f.element) {
      last[-1].mask ^= mask;
      continue;
    }
    sorted &= last == first || last[-1].element < f.element;
    last->element = f.element;
    last->mask = mask;
    ++last;
  }
  if (!in_range) return false;
  out->resize(static_cast<size_t>(last - first));
  if (sorted) return true;
  std::sort(out->begin(), out->end(),
            [](const MaskedElement& a, const MaskedElement& b) { return a.element < b.element; });
  size_t w = 0;
  for (size_t r = 0; r < out->size(); ++r) {
    if (w > 0 && (*out)[w - 1].element == (*out)[r].element) {
      (*out)[w - 1].mask ^= (*out)[r].mask;
    } else {
      (*out)[w++] = (*out)[r];
    }
  }
  out->resize(w);
  return true;
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

// begin[c] = the index of the first entry of channel >= c in `sorted` (ascending elements,
// channel = element / per_channel), for c in [0, channels]: a count per channel, then their
// prefix sums. Calls visit(i, first element of entry i's channel) for each entry. Entries lie
// below channels * per_channel.
//
// Branch-free per entry: a walk that filled the channels up to each entry's mispredicted its
// loop's exit on most entries (a third of Build for a lone execution, perf, AMD EPYC Zen 4).
template <typename Entries, typename Visit>
void IndexByChannel(const Entries& sorted, uint64_t per_channel, int channels,
                    UninitializedVector<uint32_t>* begin, Visit&& visit) {
  begin->assign(static_cast<size_t>(channels) + 1, 0);
  uint32_t* b = begin->data();
  // Elements are 32-bit: a 32-bit division, as fast here as a multiplication by the inverse.
  const auto divisor = static_cast<uint32_t>(per_channel);
  for (size_t i = 0; i < sorted.size(); ++i) {
    const uint32_t c = sorted[i].element / divisor;
    ++b[c + 1];
    visit(i, c * per_channel);
  }
  for (int c = 0; c < channels; ++c) b[c + 1] += b[c];
}

int32_t FlipDelta(int8_t v, uint32_t mask) {
  return static_cast<int8_t>(v ^ static_cast<int>(mask)) - v;
}

// Along one axis: the output index whose window reads input index i at kernel offset k, or -1.
inline int OutputIndex(int i, int pad, int k, int stride, int limit) {
  const int n = i + pad - k;
  if (n < 0) return -1;
  const int o = stride == 1 ? n : n / stride;  // most layers have stride 1: no division
  if (stride != 1 && o * stride != n) return -1;
  return o < limit ? o : -1;
}

// The output position whose window reads input (iy, ix) at kernel offset (ky, kx), if any.
bool OutputOf(const MacLayer& L, int iy, int ix, int ky, int kx, int* oy, int* ox) {
  *oy = OutputIndex(iy, L.pad_h, ky, L.stride_h, L.out_h);
  *ox = OutputIndex(ix, L.pad_w, kx, L.stride_w, L.out_w);
  return *oy >= 0 && *ox >= 0;
}

}  // namespace

Status ExecutionFaults::Build(const MacLayer& L, const FaultPlan& plan, bool private_input) {
  any_ = false;
  has_input_deltas_ = false;
  layer_ = &L;
  weight_flips_.clear();
  private_inputs_.clear();
  input_flips_.clear();
  input_begin_.clear();
  taps_.clear();
  points_.clear();
  point_begin_.clear();
  special_.clear();
  if (plan.Empty()) return Status::Ok();

  const int64_t hw = L.out_spatial();
  const int khw = L.kernel_h * L.kernel_w;
  const int64_t in_plane = static_cast<int64_t>(L.in_h) * L.in_w;
  thread_local UninitializedVector<MaskedElement> weights, inputs, hidden, outputs;
  const LayerExposure exposure = L.Exposure();
  auto merge = [&](FaultSite site, UninitializedVector<MaskedElement>* out) {
    const int s = static_cast<int>(site);
    return MergeFlips(plan.at(site), exposure.elements[s], kSiteBitWidth[s], out);
  };
  if (!merge(FaultSite::kWeights, &weights) || !merge(FaultSite::kInputs, &inputs) ||
      !merge(FaultSite::kHidden, &hidden) || !merge(FaultSite::kOutputs, &outputs)) {
    return CheckFlips(L, plan);
  }
  any_ = true;
  if (private_input) {
    // The GEMM will read the flipped input: w * x' covers the input flips, and the weight
    // flips' deltas read x' too (from its im2col), so (w' - w) * x' + w * x' = w' * x' without
    // cross terms.
    private_inputs_.resize(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      private_inputs_[i].element = inputs[i].element;
      private_inputs_[i].mask = static_cast<uint8_t>(inputs[i].mask);
    }
    inputs.clear();
  }

  // Weight flips, by output channel (their element order), with kk = element - channel * k:
  // one walk over the flips and the channel boundaries fills both, without a division.
  weight_flips_.resize(weights.size());
  IndexByChannel(weights, static_cast<uint64_t>(L.k), L.out_c, &weight_begin_,
                 [&](size_t i, uint64_t base) {
                   weight_flips_[i].kk = static_cast<int32_t>(weights[i].element - base);
                   weight_flips_[i].mask = weights[i].mask;
                 });

  // Input flips, by group (their element order), each with the outputs that read it: the
  // output rows per kernel row and columns per kernel column first, then their pairs.
  thread_local std::vector<int> oy_of, ox_of;
  thread_local std::vector<uint64_t> flipped_channel;  // a bit per input channel with flips
  if (!inputs.empty()) {
    input_begin_.assign(static_cast<size_t>(L.groups) + 1, 0);
    oy_of.resize(static_cast<size_t>(L.kernel_h));
    ox_of.resize(static_cast<size_t>(L.kernel_w));
    flipped_channel.assign((static_cast<size_t>(L.in_c) + 63) / 64, 0);
    // Room for every tap, written by index (push_back per tap cost a fifth of Build in the
    // training pass), cut to size below.
    taps_.resize(inputs.size() * static_cast<size_t>(khw));
  }
  Tap* tap = taps_.data();
  for (const MaskedElement& f : inputs) {
    const int c = static_cast<int>(f.element / in_plane);
    const int iy = static_cast<int>((f.element % in_plane) / L.in_w);
    const int ix = static_cast<int>(f.element % L.in_w);
    flipped_channel[c / 64] |= uint64_t{1} << (c % 64);
    for (int ky = 0; ky < L.kernel_h; ++ky) {
      oy_of[ky] = OutputIndex(iy, L.pad_h, ky, L.stride_h, L.out_h);
    }
    for (int kx = 0; kx < L.kernel_w; ++kx) {
      ox_of[kx] = OutputIndex(ix, L.pad_w, kx, L.stride_w, L.out_w);
    }
    InputFlip in;
    in.flip = {f.element, static_cast<uint8_t>(f.mask)};
    in.dx = 0;
    in.oy_min = L.out_h;
    in.oy_max = -1;
    in.tap_begin = static_cast<uint32_t>(tap - taps_.data());
    const auto row_base =
        static_cast<uint32_t>((c / L.group_in_c) * L.k + (c % L.group_in_c) * khw);
    for (int ky = 0; ky < L.kernel_h; ++ky) {
      const int oy = oy_of[ky];
      if (oy < 0) continue;
      for (int kx = 0; kx < L.kernel_w; ++kx) {
        if (ox_of[kx] < 0) continue;
        *tap++ = {oy, ox_of[kx], row_base + static_cast<uint32_t>(ky * L.kernel_w + kx)};
      }
      in.oy_min = std::min(in.oy_min, oy);
      in.oy_max = std::max(in.oy_max, oy);
    }
    in.tap_end = static_cast<uint32_t>(tap - taps_.data());
    if (in.tap_begin == in.tap_end) continue;  // no window reads it (strided layers)
    input_flips_.push_back(in);
    ++input_begin_[c / L.group_in_c + 1];
  }
  taps_.resize(static_cast<size_t>(tap - taps_.data()));
  for (size_t g = 0; g + 1 < input_begin_.size(); ++g) input_begin_[g + 1] += input_begin_[g];

  // Cross terms: a flipped weight reading a flipped input.
  if (!inputs.empty()) {
    thread_local std::vector<int> point_channel;  // each cross term's output channel
    point_channel.clear();
    auto by_element = [](const MaskedElement& m, uint32_t v) { return m.element < v; };
    for (int oc = 0; oc < L.out_c; ++oc) {
      for (uint32_t i = weight_begin_[oc]; i < weight_begin_[oc + 1]; ++i) {
        const WeightDelta& w = weight_flips_[i];
        const int in_channel = oc / L.group_out_c * L.group_in_c + w.kk / khw;
        if ((flipped_channel[in_channel / 64] >> (in_channel % 64) & 1) == 0) continue;
        const int ky = (w.kk % khw) / L.kernel_w;
        const int kx = w.kk % L.kernel_w;
        auto it = std::lower_bound(inputs.begin(), inputs.end(),
                                   static_cast<uint32_t>(in_channel * in_plane), by_element);
        for (; it != inputs.end() && it->element < (in_channel + 1) * in_plane; ++it) {
          int oy, ox;
          const int iy = static_cast<int>((it->element % in_plane) / L.in_w);
          const int ix = static_cast<int>(it->element % L.in_w);
          if (!OutputOf(L, iy, ix, ky, kx, &oy, &ox)) continue;
          const int32_t dw = w.Delta(L.weights[static_cast<int64_t>(oc) * L.k + w.kk]);
          points_.push_back(
              {oy * L.out_w + ox, dw, {it->element, static_cast<uint8_t>(it->mask)}, 0});
          point_channel.push_back(oc);
        }
      }
    }
    // They are rare: the index by channel only when there are some.
    if (!points_.empty()) {
      point_begin_.assign(static_cast<size_t>(L.out_c) + 1, 0);
      for (int oc : point_channel) ++point_begin_[oc + 1];
      for (int c = 0; c < L.out_c; ++c) point_begin_[c + 1] += point_begin_[c];
    }
  }
  has_input_deltas_ = !input_flips_.empty() || !points_.empty();

  // Hidden and output flips, merged per element.
  special_.resize(hidden.size() + outputs.size());
  Special* sp = special_.data();
  size_t h = 0, o = 0;
  while (h < hidden.size() || o < outputs.size()) {
    const uint32_t he = h < hidden.size() ? hidden[h].element : UINT32_MAX;
    const uint32_t oe = o < outputs.size() ? outputs[o].element : UINT32_MAX;
    sp->element = std::min(he, oe);
    sp->hidden_mask = he == sp->element ? hidden[h++].mask : 0;
    sp->output_mask = oe == sp->element ? static_cast<uint8_t>(outputs[o++].mask) : 0;
    ++sp;
  }
  special_.resize(static_cast<size_t>(sp - special_.data()));
  IndexByChannel(special_, static_cast<uint64_t>(hw), L.out_c, &special_begin_,
                 [](size_t, uint64_t) {});
  return Status::Ok();
}

void ExecutionFaults::BindInput(const int8_t* input, int8_t* faulty_input) {
  if (has_private_input()) {
    if (faulty_input != input) {
      std::memcpy(faulty_input, input, static_cast<size_t>(layer_->in_elements()));
    }
    ToggleInputFlips(faulty_input);
  }
  for (InputFlip& in : input_flips_) in.dx = FlipDelta(input[in.flip.element], in.flip.mask);
  for (PointDelta& p : points_) {
    p.value = static_cast<uint32_t>(p.dw * FlipDelta(input[p.flip.element], p.flip.mask));
  }
}

void ExecutionFaults::ToggleInputFlips(int8_t* input) const {
  for (const InputMask& f : private_inputs_) {
    input[f.element] = static_cast<int8_t>(input[f.element] ^ f.mask);
  }
}

bool ExecutionFaults::GroupHasInputFlips(int c) const {
  const int g = c / layer_->group_out_c;
  return !input_begin_.empty() && input_begin_[g] != input_begin_[g + 1];
}

bool ExecutionFaults::InputDeltasReach(int c, int oy0, int oy1) const {
  if (!point_begin_.empty() && point_begin_[c] != point_begin_[c + 1]) return true;
  return GroupInputDeltasReach(c / layer_->group_out_c, oy0, oy1);
}

bool ExecutionFaults::GroupInputDeltasReach(int g, int oy0, int oy1) const {
  // A cross term sits at one of its input flip's taps, so the flips decide.
  if (!has_input_deltas_ || input_begin_.empty()) return false;
  for (uint32_t i = input_begin_[g]; i < input_begin_[g + 1]; ++i) {
    if (input_flips_[i].Reaches(oy0, oy1)) return true;
  }
  return false;
}

void ExecutionFaults::AddCrossTerms(int c, int64_t first, int64_t len, uint32_t* row) const {
  if (point_begin_.empty()) return;
  for (uint32_t i = point_begin_[c]; i < point_begin_[c + 1]; ++i) {
    const int64_t at = points_[i].pos - first;
    if (at >= 0 && at < len) row[at] += points_[i].value;
  }
}

// Calls visit(dx, tap) for every tap of group g's input flips on output rows [oy0, oy1).
template <typename Visit>
void ExecutionFaults::ForEachTapIn(int g, int oy0, int oy1, Visit&& visit) const {
  if (input_begin_.empty()) return;
  for (uint32_t i = input_begin_[g]; i < input_begin_[g + 1]; ++i) {
    const InputFlip& in = input_flips_[i];
    if (!in.Reaches(oy0, oy1)) continue;
    for (uint32_t t = in.tap_begin; t < in.tap_end; ++t) {
      if (taps_[t].oy >= oy0 && taps_[t].oy < oy1) visit(in.dx, taps_[t]);
    }
  }
}

void ExecutionFaults::AddGroupInputDeltas(int g, int oy0, int oy1, uint32_t* tile) const {
  const MacLayer& L = *layer_;
  const int channels = L.group_out_c;
  const int64_t first = static_cast<int64_t>(oy0) * L.out_w;
  const int64_t len = static_cast<int64_t>(oy1 - oy0) * L.out_w;
  for (int n = 0; n < channels; ++n) AddCrossTerms(g * channels + n, first, len, tile + n * len);
  ForEachTapIn(g, oy0, oy1, [&](int32_t dx, const Tap& tap) {
    // The tap's weights for the group's channels are contiguous: w * (x' - x) down the tile.
    const int8_t* w = L.weights_t.data() + static_cast<size_t>(tap.weight_row) * channels;
    uint32_t* dst = tile + static_cast<int64_t>(tap.oy - oy0) * L.out_w + tap.ox;
    for (int n = 0; n < channels; ++n) dst[n * len] += static_cast<uint32_t>(w[n] * dx);
  });
}

void ExecutionFaults::AddInputDeltas(int c, int oy0, int oy1, uint32_t* row) const {
  const MacLayer& L = *layer_;
  if (!has_input_deltas_) return;
  const int64_t first = static_cast<int64_t>(oy0) * L.out_w;
  AddCrossTerms(c, first, static_cast<int64_t>(oy1 - oy0) * L.out_w, row);
  // Input flips of the channel's group: w * (x' - x) at every output reading them.
  const int n = c % L.group_out_c;
  ForEachTapIn(c / L.group_out_c, oy0, oy1, [&](int32_t dx, const Tap& tap) {
    const int32_t w = L.weights_t[static_cast<size_t>(tap.weight_row) * L.group_out_c + n];
    row[static_cast<int64_t>(tap.oy - oy0) * L.out_w + tap.ox] += static_cast<uint32_t>(w * dx);
  });
}

}  // namespace r2f::accel
