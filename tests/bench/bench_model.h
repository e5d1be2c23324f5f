// The model and images every r2f_bench benchmark runs: the default ResNet18 of the model zoo
// (width 0.25, 28x28x1 input, 10 classes) with random full-range int8 parameters
// (accel_sim/random_model.h), and one batch of 16 random images. Parameter values do not change
// the amount of work of the int8 executor or of LibTorch's float forward, so a random model
// times the same as the pre-trained one and needs no files.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "common/base/status.h"
#include "r2f.pb.h"

namespace r2f::bench {

inline constexpr int kBatch = 16;
inline constexpr int kThreads = 2;  // OpenMP threads of the executor and of LibTorch
inline constexpr uint64_t kModelSeed = 1;

// Built on first use; aborts with a message if the zoo or the generator fails (a bug).
const pb::QuantizedModel& BenchModel();
// kBatch images, NCHW uint8, shaped as BenchModel()'s input.
const std::vector<uint8_t>& BenchPixels();

// The value of `r`, or exit 2 with its status: a benchmark's set-up failing is a bug, and there
// is nobody to return the error to.
template <typename T>
T OrDie(Result<T> r) {
  if (!r.ok()) {
    std::fprintf(stderr, "r2f_bench: %s\n", r.status().ToString().c_str());
    std::exit(2);
  }
  return std::move(r).value();
}

}  // namespace r2f::bench
