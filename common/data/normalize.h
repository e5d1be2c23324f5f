// Per-channel normalisation of uint8 images into floats, without LibTorch: the server copies
// the floats into tensors, the tests check them directly.
//   x = (p / 255 - mean[c]) / stddev[c]
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/base/status.h"
#include "common/data/dataset.h"

namespace r2f {

struct ChannelStats {
  std::vector<float> mean;    // per channel, of p / 255
  std::vector<float> stddev;  // population standard deviation of p / 255; never 0
};

// Mean and standard deviation per channel over every pixel of every image, in p / 255 units.
// Sums are accumulated exactly in integers, so the result does not depend on image order. A
// constant channel gets stddev 1 (normalising it to p / 255 - mean rather than dividing by 0);
// an empty data set gets mean 0 and stddev 1.
ChannelStats ComputeChannelStats(const Dataset& ds);

// Normalises `count` contiguous NCHW images of `channels` planes of `plane_size` pixels into
// `out` (count * channels * plane_size floats, same layout). InvalidArgument when `stats` does
// not have `channels` entries or holds a non-positive stddev.
Status NormalizeImages(const uint8_t* pixels, size_t count, uint32_t channels, size_t plane_size,
                       const ChannelStats& stats, float* out);

// Normalises the samples `indices[0..count)` of `ds` into `out` (count * ds.image_bytes()
// floats, NCHW), e.g. one shuffled batch. InvalidArgument for an index >= ds.size() (nothing
// is written then) or stats of the wrong channel count.
Status NormalizeBatch(const Dataset& ds, const uint32_t* indices, size_t count,
                      const ChannelStats& stats, float* out);

}  // namespace r2f
