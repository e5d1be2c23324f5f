// The fake-quant forward's elementwise steps (docs/quantization.md, docs/retraining.md) as
// autograd functions of one pass forward and one backward each. Composed of ATen operators,
// fq(z) with its clipped straight-through gradient and the device's value put in took ten
// passes over every activation forward and about as many backward; that was most of the
// gap between the hardware-in-the-loop step and a plain fp32 training step
// (tests/bench/train_bench.cc). Values are those of the composed form, exactly: the same float
// (or double) operations in the same order, and results put on the grid, not near it.
//
// Contiguous CPU float and double tensors take the fused path; anything else the composed one.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace r2f {

// fq(act(z), f) of docs/quantization.md: round half up of act(z) * 2^f, saturated to int8, times
// 2^-f, where act is ReLU if `relu` and the identity otherwise. Gradient: dz where act(z) is inside
// the int8 range
// [-128, 127] * 2^-f (clipped straight through) and, with `relu`, z > 0; zero elsewhere.
torch::Tensor FakeQuantize(const torch::Tensor& z, int frac, bool relu = false);

// Hardware in the loop: the value of `device` (the device's output of this layer, on the grid
// of frac, same shape as z) with the gradient FakeQuantize(z, frac, relu) would have.
torch::Tensor TakeDeviceValue(const torch::Tensor& z, const torch::Tensor& device, int frac,
                              bool relu);

// Per output channel c (dimension 0 of w): round half up of w * 2^frac[c] saturated to
// [lo, hi], times 2^-frac[c], computed in double as the export does (QuantizeWeights), and
// returned in `dtype`. Gradient: dw where w is inside [lo, hi] * 2^-frac[c] if clip_gradient,
// everywhere otherwise.
torch::Tensor FakeQuantizeChannels(const torch::Tensor& w, const std::vector<int>& frac, double lo,
                                   double hi, bool clip_gradient, torch::Dtype dtype);

// Per-output-channel integer weights round(w * 2^f) saturated to int8, computed in double so
// that export and the fake-quant forward agree exactly. Returns a kInt8 tensor of w's shape.
torch::Tensor QuantizeWeights(const torch::Tensor& w, const std::vector<int>& frac);
// int32 bias round(b * 2^(input_frac + f_w[c])), saturated to int32, kInt32.
torch::Tensor QuantizeBias(const torch::Tensor& b, const std::vector<int>& weight_frac,
                           int input_frac);

}  // namespace r2f
