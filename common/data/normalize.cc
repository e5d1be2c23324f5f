#include "common/data/normalize.h"

#include <array>
#include <cmath>
#include <string>

namespace r2f {
namespace {

// One 256-entry table per channel: every pixel value maps to the same float wherever it occurs,
// computed once in double precision.
using Table = std::array<float, 256>;

Result<std::vector<Table>> MakeTables(uint32_t channels, const ChannelStats& stats) {
  if (stats.mean.size() != channels || stats.stddev.size() != channels) {
    return Status::InvalidArgument("channel stats have " + std::to_string(stats.mean.size()) +
                                   " means and " + std::to_string(stats.stddev.size()) +
                                   " stddevs for " + std::to_string(channels) + " channels");
  }
  std::vector<Table> tables(channels);
  for (uint32_t c = 0; c < channels; ++c) {
    const double mean = stats.mean[c];
    const double sd = stats.stddev[c];
    if (!(sd > 0) || !std::isfinite(sd) || !std::isfinite(mean)) {
      return Status::InvalidArgument("channel stats of channel " + std::to_string(c) +
                                     " are not usable (stddev must be finite and > 0)");
    }
    for (int p = 0; p < 256; ++p) tables[c][p] = static_cast<float>((p / 255.0 - mean) / sd);
  }
  return tables;
}

void Apply(const std::vector<Table>& tables, const uint8_t* pixels, size_t plane_size, float* out) {
  for (const Table& table : tables) {
    for (size_t i = 0; i < plane_size; ++i) out[i] = table[pixels[i]];
    pixels += plane_size;
    out += plane_size;
  }
}

}  // namespace

ChannelStats ComputeChannelStats(const Dataset& ds) {
  ChannelStats stats;
  const size_t plane = size_t{ds.height} * ds.width;
  for (uint32_t c = 0; c < ds.channels; ++c) {
    // Exact: at most 255^2 per pixel, far below 2^64 for any data set that fits in memory.
    uint64_t sum = 0, sum_sq = 0;
    for (size_t i = 0; i < ds.size(); ++i) {
      const uint8_t* p = ds.image(i) + c * plane;
      for (size_t k = 0; k < plane; ++k) {
        sum += p[k];
        sum_sq += uint64_t{p[k]} * p[k];
      }
    }
    const double n = static_cast<double>(ds.size()) * static_cast<double>(plane);
    double mean = 0, sd = 1;
    if (n > 0) {
      mean = static_cast<double>(sum) / n;  // in pixel units for now
      const double var = static_cast<double>(sum_sq) / n - mean * mean;
      sd = var > 0 ? std::sqrt(var) / 255.0 : 0;
      mean /= 255.0;
      if (!(sd > 0)) sd = 1;
    }
    stats.mean.push_back(static_cast<float>(mean));
    stats.stddev.push_back(static_cast<float>(sd));
  }
  return stats;
}

Status NormalizeImages(const uint8_t* pixels, size_t count, uint32_t channels, size_t plane_size,
                       const ChannelStats& stats, float* out) {
  R2F_ASSIGN_OR_RETURN(std::vector<Table> tables, MakeTables(channels, stats));
  const size_t image = size_t{channels} * plane_size;
  for (size_t i = 0; i < count; ++i) Apply(tables, pixels + i * image, plane_size, out + i * image);
  return Status::Ok();
}

Status NormalizeBatch(const Dataset& ds, const uint32_t* indices, size_t count,
                      const ChannelStats& stats, float* out) {
  for (size_t i = 0; i < count; ++i) {
    if (indices[i] >= ds.size()) {
      return Status::InvalidArgument("sample index " + std::to_string(indices[i]) +
                                     " is out of range for data set '" + ds.name + "' of " +
                                     std::to_string(ds.size()) + " samples");
    }
  }
  R2F_ASSIGN_OR_RETURN(std::vector<Table> tables, MakeTables(ds.channels, stats));
  const size_t plane = size_t{ds.height} * ds.width;
  for (size_t i = 0; i < count; ++i) {
    Apply(tables, ds.image(indices[i]), plane, out + i * ds.image_bytes());
  }
  return Status::Ok();
}

}  // namespace r2f
