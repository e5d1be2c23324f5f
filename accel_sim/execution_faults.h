// The exact effect of one execution's bit flips (one image, one TMR replica, one MAC layer) on
// its accumulators and outputs (docs/accel_sim.md, "Exact effect without redoing the work").
//
// The clean GEMM runs once per distinct input image; the GEMM epilogue then asks, row segment by
// row segment, for the integer deltas this execution adds to the clean accumulators and
// requantises the sum:
//   weights: w' = w ^ mask; every accumulator of that output channel (this image) whose window
//            reads weight w gets (w' - w) * x: a rank-1 update of the channel's plane. The x of
//            the outputs of a row segment are exactly row kk of the segment's im2col (zeros in
//            the padding), so only (kk, mask) is recorded per channel and the epilogue adds
//            (w' - w) * im2col_row[kk] (mac_kernels.cc, scaled_row.h).
//   inputs:  x' = x ^ mask; every accumulator whose window reads x (all windows containing it,
//            all output channels of its group) gets w * (x' - x). When a flipped weight reads a
//            flipped input, the cross term (w'-w)(x'-x) is added too, so that the accumulator is
//            exactly bias + sum w'x' over the faulty operands.
//            For a lone (non-TMR) execution the input flips are instead applied to the input
//            that its own GEMM reads (a "private input", see BindInput): exact, and much
//            cheaper, since at BER 1e-4 input flips reach a large share of a layer's outputs.
//            (Not when TMR replicas run a clean GEMM on the same input anyway: joining it
//            saves that GEMM.)
//   hidden:  the final int32 accumulator (bias and the deltas above included) has bits XORed,
//            before requantisation.
//   outputs: the stored int8 output has bits XORed, after activation and saturation.
// Hidden and output flips touch single elements ("specials") that the epilogue treats one by
// one. Deltas are added to the int32 tile in place (a lone execution owning its GEMM result)
// or generated into a row buffer that stays in L1 (TMR replicas sharing one), so the cost is
// O(flips x fan-out), with no pass over the layer.
//
// Two steps, so that the executor can index every layer's flips in one parallel pass before
// the forward pass (one OpenMP synchronisation per call instead of one per layer, which matters
// on a loaded machine): Build() needs only the flips and the layer's weights; BindInput() reads
// the layer input once it exists (O(input flips + cross terms)).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "accel_sim/compiled_model.h"
#include "accel_sim/fault_plan.h"
#include "common/base/status.h"
#include "common/base/uninitialized_vector.h"

namespace r2f::accel {

class ExecutionFaults {
 public:
  // An element with hidden and/or output flips.
  struct Special {
    uint32_t element;
    uint32_t hidden_mask;
    uint8_t output_mask;
  };

  // A flipped weight of one output channel at reduction index kk (in [0, layer.k)):
  // w' = w ^ mask. w is read by the epilogue (MacLayer::CachedWeights), where it is in cache.
  struct WeightDelta {
    int32_t kk;
    uint32_t mask;
    int32_t Delta(int8_t w) const { return static_cast<int8_t>(w ^ static_cast<int>(mask)) - w; }
  };

  // Indexes the flips of `plan` for `layer` (which must outlive the object). Fails, leaving
  // the object without flips, if a flip lies outside its site.
  //
  // With `private_input` (a lone execution), input flips are not turned into deltas:
  // BindInput writes the flipped input where the GEMM of this execution will read it. TMR
  // replicas sharing one clean GEMM need the deltas (private_input == false).
  Status Build(const MacLayer& layer, const FaultPlan& plan, bool private_input);

  // Must be called after Build() and before the deltas are used, with the image's clean layer
  // input (CHW), read here only. Computes the input-flip deltas and cross terms; for a
  // private input, writes the flipped input into `faulty_input` (in_elements() bytes). That
  // may be `input` itself: the bits are then flipped in place (no copy), and the caller
  // restores the clean input after the layer with ToggleInputFlips(input).
  void BindInput(const int8_t* input, int8_t* faulty_input);

  // Whether BindInput needs a faulty_input buffer.
  bool has_private_input() const { return !private_inputs_.empty(); }

  // XORs the input flips that BindInput wrote into faulty_input into `input`: self-inverse,
  // so applied to the flipped input it restores the clean one.
  void ToggleInputFlips(int8_t* input) const;

  bool any() const { return any_; }
  // Whether output channel c differs from clean anywhere (deltas or specials).
  bool Affects(int c) const {
    return any_ && (weight_begin_[c] != weight_begin_[c + 1] ||
                    special_begin_[c] != special_begin_[c + 1] ||
                    (has_input_deltas_ && GroupHasInputFlips(c)));
  }
  // The weight flips of output channel c, by increasing kk: [first, last).
  std::pair<const WeightDelta*, const WeightDelta*> WeightDeltasOf(int c) const {
    if (!any_) return {nullptr, nullptr};
    return {weight_flips_.data() + weight_begin_[c], weight_flips_.data() + weight_begin_[c + 1]};
  }
  bool HasWeightDeltas(int c) const { return any_ && weight_begin_[c] != weight_begin_[c + 1]; }
  // Whether input flips (or cross terms) give channel c a delta in output rows [oy0, oy1).
  bool HasInputDeltas(int c, int oy0, int oy1) const {
    return has_input_deltas_ && InputDeltasReach(c, oy0, oy1);
  }
  // Adds the input-flip deltas and cross terms of channel c, output rows [oy0, oy1), to
  // row[(oy - oy0) * out_w + ox] (wrapping: added to the clean accumulator modulo 2^32 they
  // give the faulty accumulator, which always fits int32, so the sum is exact). Weight flips
  // are not included (WeightDeltasOf).
  void AddInputDeltas(int c, int oy0, int oy1, uint32_t* row) const;
  // Whether input flips (or cross terms) of group g give any of its channels a delta in output
  // rows [oy0, oy1).
  bool GroupInputDeltasReach(int g, int oy0, int oy1) const;
  // AddInputDeltas for every output channel of group g at once: adds to
  // tile[n * len + (oy - oy0) * out_w + ox] for the group's channel n, with
  // len = (oy1 - oy0) * out_w. Each flip's window is visited once for all channels, where
  // AddInputDeltas visits it once per channel.
  void AddGroupInputDeltas(int g, int oy0, int oy1, uint32_t* tile) const;
  // Asks the CPU to fetch the per-channel index of channels [c0, c1): it was built before the
  // forward pass (see the class comment) and has usually left the cache by the time the
  // epilogue reads it, once per channel of every row segment.
  void Prefetch(int c0, int c1) const {
    if (!any_) return;
    for (int c = c0; c < c1 + 1; c += 16) {  // 16 indexes per cache line
      __builtin_prefetch(weight_begin_.data() + c);
      __builtin_prefetch(special_begin_.data() + c);
    }
    __builtin_prefetch(weight_begin_.data() + c1);
    __builtin_prefetch(special_begin_.data() + c1);
  }
  bool HasSpecials(int c) const { return any_ && special_begin_[c] != special_begin_[c + 1]; }
  // The specials of output channel c, ascending: [first, last).
  std::pair<const Special*, const Special*> SpecialsOf(int c) const {
    if (!HasSpecials(c)) return {nullptr, nullptr};
    return {special_.data() + special_begin_[c], special_.data() + special_begin_[c + 1]};
  }

 private:
  struct InputMask {  // a flipped input byte: x' = x ^ mask
    uint32_t element;
    uint8_t mask;
  };
  struct InputFlip {  // per group
    InputMask flip;
    int32_t dx;                   // x' - x (BindInput)
    int32_t oy_min, oy_max;       // output rows whose windows read the element
    uint32_t tap_begin, tap_end;  // into taps_
    // Whether some window reading the element lies in output rows [oy0, oy1).
    bool Reaches(int oy0, int oy1) const { return oy_max >= oy0 && oy_min < oy1; }
  };
  struct Tap {
    int32_t oy, ox;       // an output reading the flipped element
    uint32_t weight_row;  // the group's weights at the tap's kernel offset: a row of weights_t
  };
  struct PointDelta {  // a cross term, per output channel
    int32_t pos;
    int32_t dw;      // w' - w of the flipped weight
    InputMask flip;  // the flipped input it reads
    uint32_t value;  // dw * (x' - x) (BindInput)
  };

  bool GroupHasInputFlips(int c) const;
  // Adds channel c's cross terms at row positions [first, first + len) to row[pos - first].
  void AddCrossTerms(int c, int64_t first, int64_t len, uint32_t* row) const;
  template <typename Visit>
  void ForEachTapIn(int g, int oy0, int oy1, Visit&& visit) const;
  bool InputDeltasReach(int c, int oy0, int oy1) const;

  const MacLayer* layer_ = nullptr;
  bool any_ = false;
  bool has_input_deltas_ = false;  // input_flips_ or points_ not empty
  UninitializedVector<WeightDelta> weight_flips_;
  UninitializedVector<uint32_t> weight_begin_;     // per output channel, + 1
  UninitializedVector<InputMask> private_inputs_;  // a private input's flips
  std::vector<InputFlip> input_flips_;
  std::vector<uint32_t> input_begin_;  // per group, + 1 (when there are input flips)
  UninitializedVector<Tap> taps_;
  std::vector<PointDelta> points_;
  std::vector<uint32_t> point_begin_;  // per output channel, + 1 (when there are cross terms)
  UninitializedVector<Special> special_;
  UninitializedVector<uint32_t> special_begin_;  // per output channel, + 1
};

}  // namespace r2f::accel
