#include "server/model/fake_quant_ops.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <stdexcept>
#include <string>

namespace r2f {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// Elements per task of at::parallel_for: below this a second thread costs more than it saves.
constexpr int64_t kGrain = 16384;

bool Fusable(const torch::Tensor& t) {
  return t.device().is_cpu() && t.is_contiguous() &&
         (t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kDouble);
}

bool NeedsGrad(const torch::Tensor& t) {
  return t.requires_grad() && torch::GradMode::is_enabled();
}

// Straight-through replacement: the value of `target`, the gradient of `x`.
torch::Tensor StraightThrough(const torch::Tensor& x, const torch::Tensor& target) {
  return x + (target - x).detach();
}

// Per channel 2^f as a tensor broadcastable against a tensor of `dims` dimensions.
torch::Tensor ChannelScale(const std::vector<int>& frac, int64_t dims, torch::Dtype dtype) {
  std::vector<double> s(frac.size());
  for (size_t i = 0; i < frac.size(); ++i) s[i] = std::ldexp(1.0, frac[i]);
  std::vector<int64_t> shape(static_cast<size_t>(dims), 1);
  shape[0] = static_cast<int64_t>(frac.size());
  return torch::tensor(s, torch::kDouble).to(dtype).view(shape);
}

// The composed forms (ATen operators; any device, dtype and layout), which the fused ones
// reproduce.
torch::Tensor ComposedFakeQuantize(const torch::Tensor& z, int frac, bool relu) {
  const torch::Tensor a = relu ? torch::relu(z) : z;
  const double scale = std::ldexp(1.0, frac);
  torch::Tensor clipped = a.clamp(-128.0 / scale, 127.0 / scale);
  torch::Tensor q;
  {
    torch::NoGradGuard no_grad;
    q = torch::floor(a * scale + 0.5).clamp(-128, 127) / scale;
  }
  return StraightThrough(clipped, q);
}

// round(w * 2^frac[c]) per channel saturated to [lo, hi], in double (integral values).
torch::Tensor RoundToGrid(const torch::Tensor& w, const std::vector<int>& frac, double lo,
                          double hi) {
  torch::NoGradGuard no_grad;
  return torch::floor(w.detach().to(torch::kDouble) * ChannelScale(frac, w.dim(), torch::kDouble) +
                      0.5)
      .clamp(lo, hi);
}

torch::Tensor ComposedChannels(const torch::Tensor& w, const std::vector<int>& frac, double lo,
                               double hi, bool clip_gradient, torch::Dtype dtype) {
  const torch::Tensor q = RoundToGrid(w, frac, lo, hi);
  const torch::Tensor scale = ChannelScale(frac, w.dim(), dtype);
  const torch::Tensor grid = q.to(dtype) / scale;
  torch::Tensor x = w.to(dtype);
  if (clip_gradient) x = torch::max(torch::min(x, hi / scale), lo / scale);
  return StraightThrough(x, grid);
}

// floor(v) for v already clamped to the range of I: a truncating conversion and a correction,
// which vectorises, where std::floor is a libm call per element on baseline x86-64.
// By value, unlike std::min / std::max (whose references keep GCC from if-converting, and so
// from vectorising). Same results for numbers.
template <typename T>
T Max(T a, T b) {
  return a < b ? b : a;
}
template <typename T>
T Min(T a, T b) {
  return b < a ? b : a;
}

template <typename I, typename T>
T FloorOf(T v) {
  const T truncated = static_cast<T>(static_cast<I>(v));
  return truncated - static_cast<T>(truncated > v);
}

// o = g times the mask over [begin, end). The mask's bools are read as bytes (0 or 1), which GCC
// vectorises (bool loads it does not), through restrict pointers (no overlap checks).
template <typename T>
void MaskRange(const T* __restrict g, const uint8_t* __restrict m, int64_t begin, int64_t end,
               T* __restrict o) {
  for (int64_t i = begin; i < end; ++i) o[i] = g[i] * static_cast<T>(m[i]);
}

// The gradient through a saved mask: g times the mask, as ATen's clamp backward does (so a NaN
// stays NaN where the mask is 0).
torch::Tensor MaskedGradient(const torch::Tensor& grad, const torch::Tensor& mask) {
  const torch::Tensor g = grad.contiguous();
  torch::Tensor out = torch::empty_like(g);
  const auto* m = reinterpret_cast<const uint8_t*>(mask.data_ptr<bool>());
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "MaskedGradient", [&] {
    const scalar_t* in = g.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, g.numel(), kGrain,
                     [in, o, m](int64_t begin, int64_t end) { MaskRange(in, m, begin, end, o); });
  });
  return out;
}

// One pass over [begin, end) of z: the quantised value (kValue) and where the gradient passes
// (kMask). The operations give ComposedFakeQuantize's values exactly (the multiplication by
// 2^-f is the division by 2^f: both are exact). Branch-free, so that it vectorises.
template <typename T, bool kRelu, bool kValue, bool kMask>
void QuantizeRange(const T* __restrict z, int64_t begin, int64_t end, int frac, T* __restrict value,
                   bool* __restrict mask) {
  const T scale = static_cast<T>(std::ldexp(1.0, frac));
  const T inverse = static_cast<T>(std::ldexp(1.0, -frac));
  const T lo = static_cast<T>(-128.0 * std::ldexp(1.0, -frac));
  const T hi = static_cast<T>(127.0 * std::ldexp(1.0, -frac));
  for (int64_t i = begin; i < end; ++i) {
    const T a = kRelu ? Max(z[i], T(0)) : z[i];
    if (kValue) {
      // Clamping before the floor (to [-128, 127.5]) gives the same grid value as after it.
      const T v = Min(Max(a * scale + T(0.5), T(-128)), T(127.5));
      value[i] = FloorOf<int32_t>(v) * inverse;
    }
    if (kMask) mask[i] = (a >= lo) & (a <= hi) & (!kRelu | (z[i] > T(0)));
  }
}

template <typename T, bool kValue, bool kMask>
void QuantizePass(const T* z, int64_t n, int frac, bool relu, T* value, bool* mask) {
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    if (relu) {
      QuantizeRange<T, true, kValue, kMask>(z, begin, end, frac, value, mask);
    } else {
      QuantizeRange<T, false, kValue, kMask>(z, begin, end, frac, value, mask);
    }
  });
}

torch::Tensor GradientMask(const torch::Tensor& z, int frac, bool relu) {
  torch::Tensor mask = torch::empty(z.sizes(), z.options().dtype(torch::kBool));
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "GradientMask", [&] {
    QuantizePass<scalar_t, false, true>(z.data_ptr<scalar_t>(), z.numel(), frac, relu, nullptr,
                                        mask.data_ptr<bool>());
  });
  return mask;
}

torch::Tensor QuantizedValue(const torch::Tensor& z, int frac, bool relu) {
  torch::Tensor value = torch::empty_like(z);
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "QuantizedValue", [&] {
    QuantizePass<scalar_t, true, false>(z.data_ptr<scalar_t>(), z.numel(), frac, relu,
                                        value.data_ptr<scalar_t>(), nullptr);
  });
  return value;
}

class FakeQuantizeFunction : public torch::autograd::Function<FakeQuantizeFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& z, int64_t frac,
                               bool relu) {
    torch::Tensor value = torch::empty_like(z);
    torch::Tensor mask = torch::empty(z.sizes(), z.options().dtype(torch::kBool));
    AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "FakeQuantize", [&] {
      QuantizePass<scalar_t, true, true>(z.data_ptr<scalar_t>(), z.numel(), static_cast<int>(frac),
                                         relu, value.data_ptr<scalar_t>(), mask.data_ptr<bool>());
    });
    ctx->save_for_backward({mask});
    return value;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    return {MaskedGradient(grads[0], ctx->get_saved_variables()[0]), torch::Tensor(),
            torch::Tensor()};
  }
};

class DeviceValueFunction : public torch::autograd::Function<DeviceValueFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& z,
                               const torch::Tensor& device, int64_t frac, bool relu) {
    ctx->save_for_backward({GradientMask(z, static_cast<int>(frac), relu)});
    // No copy: autograd returns an unmodified input as a view of it.
    return device.to(z.scalar_type());
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    return {MaskedGradient(grads[0], ctx->get_saved_variables()[0]), torch::Tensor(),
            torch::Tensor(), torch::Tensor()};
  }
};

// One channel's [begin, end): the grid value (in T) and, with kMask, where the gradient passes.
// I holds every integer of [lo, hi] (int32 for weights, int64 for biases).
template <typename T, typename I, bool kMask>
void ChannelRange(const T* __restrict w, int64_t begin, int64_t end, int frac, double lo, double hi,
                  T* __restrict value, bool* __restrict mask) {
  const double s = std::ldexp(1.0, frac);
  const T inverse = static_cast<T>(std::ldexp(1.0, -frac));
  const T low = static_cast<T>(lo) * inverse, high = static_cast<T>(hi) * inverse;
  for (int64_t i = begin; i < end; ++i) {
    const double v = Min(Max(static_cast<double>(w[i]) * s + 0.5, lo), hi + 0.5);
    value[i] = static_cast<T>(FloorOf<I>(v)) * inverse;
    if (kMask) mask[i] = (w[i] >= low) & (w[i] <= high);
  }
}

template <typename T>
void ChannelPass(const T* w, int64_t channels, int64_t inner, const std::vector<int>& frac,
                 double lo, double hi, T* value, bool* mask) {
  const bool narrow = lo >= INT32_MIN / 2 && hi <= INT32_MAX / 2;  // int8 weights, not biases
  at::parallel_for(0, channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const int f = frac[static_cast<size_t>(c)];
      const int64_t from = c * inner, to = from + inner;
      if (mask != nullptr && narrow) {
        ChannelRange<T, int32_t, true>(w, from, to, f, lo, hi, value, mask);
      } else if (mask != nullptr) {
        ChannelRange<T, int64_t, true>(w, from, to, f, lo, hi, value, mask);
      } else if (narrow) {
        ChannelRange<T, int32_t, false>(w, from, to, f, lo, hi, value, mask);
      } else {
        ChannelRange<T, int64_t, false>(w, from, to, f, lo, hi, value, mask);
      }
    }
  });
}

class ChannelsFunction : public torch::autograd::Function<ChannelsFunction> {
 public:
  // `w` is already in the output dtype; frac has one entry per channel.
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& w,
                               const std::vector<int>& frac, double lo, double hi,
                               bool clip_gradient) {
    torch::Tensor value = torch::empty_like(w);
    torch::Tensor mask;
    if (clip_gradient) mask = torch::empty(w.sizes(), w.options().dtype(torch::kBool));
    const int64_t channels = w.size(0);
    AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "FakeQuantizeChannels", [&] {
      ChannelPass<scalar_t>(w.data_ptr<scalar_t>(), channels, w.numel() / channels, frac, lo, hi,
                            value.data_ptr<scalar_t>(),
                            clip_gradient ? mask.data_ptr<bool>() : nullptr);
    });
    ctx->save_for_backward({mask});
    return value;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const torch::Tensor mask = ctx->get_saved_variables()[0];
    torch::Tensor g = mask.defined() ? MaskedGradient(grads[0], mask) : grads[0];
    return {g, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor FakeQuantize(const torch::Tensor& z, int frac, bool relu) {
  if (!Fusable(z)) return ComposedFakeQuantize(z, frac, relu);
  if (!NeedsGrad(z)) return QuantizedValue(z, frac, relu);
  return FakeQuantizeFunction::apply(z, static_cast<int64_t>(frac), relu);
}

torch::Tensor TakeDeviceValue(const torch::Tensor& z, const torch::Tensor& device, int frac,
                              bool relu) {
  if (!device.sizes().equals(z.sizes())) {
    throw std::invalid_argument("hardware-in-the-loop forward: device output of shape " +
                                c10::str(device.sizes()) + " for a layer output of shape " +
                                c10::str(z.sizes()));
  }
  if (!Fusable(z))
    return StraightThrough(ComposedFakeQuantize(z, frac, relu), device.to(z.scalar_type()));
  if (!NeedsGrad(z)) return device.to(z.scalar_type());
  return DeviceValueFunction::apply(z, device, static_cast<int64_t>(frac), relu);
}

torch::Tensor FakeQuantizeChannels(const torch::Tensor& w, const std::vector<int>& frac, double lo,
                                   double hi, bool clip_gradient, torch::Dtype dtype) {
  if (w.dim() == 0 || static_cast<int64_t>(frac.size()) != w.size(0)) {
    throw std::invalid_argument("fake quantisation: " + std::to_string(frac.size()) +
                                " channel formats for a parameter of shape " + c10::str(w.sizes()));
  }
  const torch::Tensor x = w.to(dtype);
  if (!Fusable(x)) return ComposedChannels(w, frac, lo, hi, clip_gradient, dtype);
  return ChannelsFunction::apply(x, frac, lo, hi, clip_gradient);
}

torch::Tensor QuantizeWeights(const torch::Tensor& w, const std::vector<int>& frac) {
  return RoundToGrid(w, frac, -128, 127).to(torch::kInt8);
}

torch::Tensor QuantizeBias(const torch::Tensor& b, const std::vector<int>& weight_frac,
                           int input_frac) {
  std::vector<int> acc_frac(weight_frac);
  for (int& f : acc_frac) f += input_frac;
  return RoundToGrid(b, acc_frac, INT32_MIN, INT32_MAX).to(torch::kInt32);
}

}  // namespace r2f
