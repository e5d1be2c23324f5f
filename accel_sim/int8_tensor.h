// A batch of int8 tensors in NCHW (or N x F) order with one power-of-two scale.
#pragma once

#include <cstdint>
#include <vector>

namespace r2f::accel {

struct Int8Tensor {
  int batch = 0;
  std::vector<uint32_t> dims;  // per-image shape: [C, H, W] or [F]
  int frac = 0;                // value = q * 2^-frac
  std::vector<int8_t> data;    // batch * PerImage() values

  int64_t PerImage() const {
    int64_t n = 1;
    for (uint32_t d : dims) n *= d;
    return n;
  }
};

}  // namespace r2f::accel
