// The exact effect of one execution's bit flips (one image, one TMR replica, one MAC layer) on
// its accumulators and outputs (DESIGN §4 "Fast injection").
//
// The clean GEMM runs once per distinct input image; the GEMM epilogue then asks, row segment by
// row segment, for the integer deltas this execution adds to the clean accumulators and
// requantises the sum:
//   weights: w' = w ^ mask; every accumulator of that output channel (this image) whose window
//            reads weight w gets (w' - w) * x: a rank-1 update of the channel's plane.
//   inputs:  x' = x ^ mask; every accumulator whose window reads x (all windows containing it,
//            all output channels of its group) gets w * (x' - x). When a flipped weight reads a
//            flipped input, the cross term (w'-w)(x'-x) is added too, so that the accumulator is
//            exactly bias + sum w'x' over the faulty operands.
//            For a lone (non-TMR) execution the input flips are instead applied to a copy of
//            the input that its own GEMM reads (Build's `faulty_input`): exact, and much cheaper,
//            since at BER 1e-4 input flips reach a large share of a layer's outputs.
//   hidden:  the final int32 accumulator (bias and the deltas above included) has bits XORed,
//            before requantisation.
//   outputs: the stored int8 output has bits XORed, after activation and saturation.
// Hidden and output flips touch single elements ("specials") that the epilogue treats one by
// one. Build() only sorts and indexes the flips; deltas are generated into a row buffer that
// stays in L1, so the cost is O(flips x fan-out), with no pass over the layer.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "accel_sim/compiled_model.h"
#include "accel_sim/fault_plan.h"
#include "common/status.h"

namespace r2f::accel {

class ExecutionFaults {
 public:
  // An element with hidden and/or output flips.
  struct Special {
    uint32_t element;
    uint32_t hidden_mask;
    uint8_t output_mask;
  };

  // Indexes the flips of `plan` for `layer`. `input` is the image's clean layer input (CHW);
  // it must stay valid and unchanged until the deltas have been used. Fails, leaving the
  // object without flips, if a flip lies outside its site.
  //
  // With `faulty_input` (in_elements() bytes), the input flips are not turned into deltas:
  // the flipped input is written there instead, and the GEMM of this execution must run on
  // it. That is exact and nearly free for a lone execution; TMR replicas sharing one clean
  // GEMM need the deltas (faulty_input == nullptr).
  Status Build(const MacLayer& layer, const int8_t* input, const FaultPlan& plan,
               int8_t* faulty_input = nullptr);

  bool any() const { return any_; }
  // Whether output channel c differs from clean anywhere (deltas or specials).
  bool Affects(int c) const { return any_ && affected_[c] != 0; }
  // Whether output channel c gets a delta somewhere in output rows [oy0, oy1).
  bool Touches(int c, int oy0, int oy1) const;
  // Adds the deltas of channel c, output rows [oy0, oy1), to row[(oy - oy0) * out_w + ox]
  // (wrapping: added to the clean accumulator modulo 2^32 they give the faulty accumulator,
  // which always fits int32, so the sum is exact).
  void AddDeltas(int c, int oy0, int oy1, uint32_t* row) const;
  bool HasSpecials(int c) const {
    return any_ && !special_.empty() && special_begin_[c] != special_begin_[c + 1];
  }
  // The specials of output channel c, ascending: [first, last).
  std::pair<const Special*, const Special*> SpecialsOf(int c) const {
    if (!HasSpecials(c)) return {nullptr, nullptr};
    return {special_.data() + special_begin_[c], special_.data() + special_begin_[c + 1]};
  }

 private:
  struct WeightFlip {  // per output channel
    uint32_t mask;     // w' = w ^ mask; w is read when the deltas are generated (in cache then)
    int32_t kk;        // the weight's index within the channel
    int32_t in_channel;
    int32_t ky, kx;
    // The outputs whose window reads this weight inside the input (not in padding):
    // rows [oy_lo, oy_hi), columns [ox_lo, ox_hi).
    int32_t oy_lo, oy_hi, ox_lo, ox_hi;
  };
  struct InputFlip {  // per group
    int32_t dx;       // x' - x
    int32_t in_channel_in_group;
    int32_t oy_min, oy_max;       // output rows whose windows read the element
    uint32_t tap_begin, tap_end;  // into taps_
  };
  struct Tap {
    int32_t oy, ox;  // an output reading the flipped element
  };
  struct PointDelta {  // a cross term, per output channel
    int32_t pos;
    uint32_t value;
  };

  const MacLayer* layer_ = nullptr;
  const int8_t* input_ = nullptr;
  bool any_ = false;
  std::vector<WeightFlip> weight_flips_;
  std::vector<uint32_t> weight_begin_;  // per output channel, + 1
  std::vector<InputFlip> input_flips_;
  std::vector<uint32_t> input_begin_;  // per group, + 1
  std::vector<Tap> taps_;
  // Per tap, the weights of the group's output channels at the tap's kernel offset (a copy:
  // the epilogue reads them for every channel, and the layer's weights are not in cache).
  std::vector<int8_t> tap_weights_;  // [tap][group_out_c]
  std::vector<PointDelta> points_;
  std::vector<uint32_t> point_begin_;  // per output channel, + 1
  std::vector<Special> special_;
  std::vector<uint32_t> special_begin_;  // per output channel, + 1
  std::vector<uint8_t> affected_;        // per output channel
};

}  // namespace r2f::accel
