// The fused fake-quant operators against their definitions written with ATen operators, value
// and gradient, on both the fused path (contiguous float / double) and the composed one.
#include "server/model/fake_quant_ops.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace r2f {
namespace {

// Random values on a grid finer than 2^-frac, with exact halves, both saturations and zeros
// among them, in `dtype`.
torch::Tensor Activations(torch::Dtype dtype, int frac) {
  torch::manual_seed(7);
  torch::Tensor z = torch::randn({4, 8, 9, 9}, torch::kDouble) * 200.0 / std::ldexp(1.0, frac);
  z.view(-1).slice(0, 0, 64) =
      torch::arange(-32, 32, torch::kDouble) / std::ldexp(1.0, frac + 1);  // halves and zeros
  return z.to(dtype);
}

torch::Tensor Definition(const torch::Tensor& z, int frac, bool relu) {
  const torch::Tensor a = relu ? torch::relu(z) : z;
  const double scale = std::ldexp(1.0, frac);
  return torch::floor(a * scale + 0.5).clamp(-128, 127) / scale;
}

torch::Tensor DefinitionGradient(const torch::Tensor& z, int frac, bool relu) {
  const double scale = std::ldexp(1.0, frac);
  const torch::Tensor a = relu ? torch::relu(z) : z;
  torch::Tensor pass = (a >= -128.0 / scale).logical_and(a <= 127.0 / scale);
  if (relu) pass = pass.logical_and(z > 0);
  return pass.to(z.scalar_type());
}

class FakeQuantizeTest : public ::testing::TestWithParam<std::tuple<torch::Dtype, bool>> {};

TEST_P(FakeQuantizeTest, ValueAndGradientAreTheDefinitions) {
  const auto [dtype, relu] = GetParam();
  const int frac = 4;
  torch::Tensor z = Activations(dtype, frac).requires_grad_(true);
  torch::Tensor q = FakeQuantize(z, frac, relu);
  EXPECT_TRUE(torch::equal(q.detach(), Definition(z.detach(), frac, relu)));
  (q * 3.0).sum().backward();
  EXPECT_TRUE(torch::equal(z.grad(), 3.0 * DefinitionGradient(z.detach(), frac, relu)));
}

TEST_P(FakeQuantizeTest, NonContiguousInputTakesTheComposedPathWithTheSameValues) {
  const auto [dtype, relu] = GetParam();
  torch::Tensor z = Activations(dtype, 3).transpose(2, 3);
  ASSERT_FALSE(z.is_contiguous());
  EXPECT_TRUE(torch::equal(FakeQuantize(z, 3, relu), Definition(z, 3, relu)));
  EXPECT_TRUE(torch::equal(FakeQuantize(z.contiguous(), 3, relu), Definition(z, 3, relu)));
}

TEST_P(FakeQuantizeTest, DeviceValueIsTheDevicesWithTheFakeQuantGradient) {
  const auto [dtype, relu] = GetParam();
  const int frac = 5;
  torch::Tensor z = Activations(dtype, frac).requires_grad_(true);
  const torch::Tensor device = torch::randint(-128, 128, z.sizes(), torch::kDouble) / 32.0;
  torch::Tensor v = TakeDeviceValue(z, device, frac, relu);
  EXPECT_TRUE(torch::equal(v.detach(), device.to(dtype)));
  v.sum().backward();
  EXPECT_TRUE(torch::equal(z.grad(), DefinitionGradient(z.detach(), frac, relu)));
  EXPECT_THROW(TakeDeviceValue(z, device.slice(0, 0, 2), frac, relu), std::invalid_argument);
}

INSTANTIATE_TEST_SUITE_P(DtypeAndRelu, FakeQuantizeTest,
                         ::testing::Combine(::testing::Values(torch::kFloat, torch::kDouble),
                                            ::testing::Bool()));

TEST(FakeQuantizeChannels, WeightsAreQuantizeWeightsOnTheGridWithClippedGradient) {
  torch::manual_seed(3);
  const std::vector<int> frac{7, 5, 9};
  torch::Tensor w = (torch::randn({3, 4, 3, 3}) * 0.6).requires_grad_(true);
  torch::Tensor q = FakeQuantizeChannels(w, frac, -128, 127, true, torch::kFloat);
  const torch::Tensor scale = torch::tensor({128.0, 32.0, 512.0}).view({3, 1, 1, 1});
  EXPECT_TRUE(torch::equal(q.detach(), QuantizeWeights(w, frac).to(torch::kFloat) / scale));
  q.sum().backward();
  const torch::Tensor inside =
      (w.detach() >= -128.0 / scale).logical_and(w.detach() <= 127.0 / scale);
  EXPECT_TRUE(torch::equal(w.grad(), inside.to(torch::kFloat)));
  EXPECT_GT(inside.logical_not().sum().item<int64_t>(), 0) << "no weight saturated: a weak test";
  EXPECT_THROW(FakeQuantizeChannels(w, {7, 5}, -128, 127, true, torch::kFloat),
               std::invalid_argument);
}

TEST(FakeQuantizeChannels, BiasIsQuantizeBiasWithTheFullGradient) {
  const torch::Tensor b = torch::tensor({0.25, -1.0, 1e6}).requires_grad_(true);
  torch::Tensor q =
      FakeQuantizeChannels(b, {5, 6, 10}, INT32_MIN, INT32_MAX, false, torch::kDouble);
  const torch::Tensor expected = QuantizeBias(b, {3, 4, 8}, 2).to(torch::kDouble) /
                                 torch::tensor({32.0, 64.0, 1024.0}, torch::kDouble);
  EXPECT_TRUE(torch::equal(q.detach(), expected));
  q.sum().backward();
  EXPECT_TRUE(torch::equal(b.grad(), torch::ones({3})));
}

}  // namespace
}  // namespace r2f
