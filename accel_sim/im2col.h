// im2col of MAC-layer tiles (internal to mac_kernels.cc): the int8 matrix col[kk][j] whose
// column j holds the inputs that output column j of a tile multiplies with weight kk of a group
// (0 where the window lies in the padding). The GEMM reads it packed (int16_gemm.h); the
// weight-flip deltas read its rows directly.
#pragma once

#include <cstdint>
#include <vector>

#include "accel_sim/compiled_model.h"
#include "accel_sim/mac_kernels.h"

namespace r2f::accel {

// Output rows [r0, r1) of a tile grouped by image: rows oy0..oy1 of image `image` fill tile
// columns [col0, col0 + (oy1 - oy0) * out_w).
struct Segment {
  int64_t image;
  int oy0, oy1;
  int64_t col0;
};

// Grows *v to at least n elements (never shrinks: per-thread buffers keep their size).
template <typename T>
void Grow(std::vector<T>* v, int64_t n) {
  if (static_cast<int64_t>(v->size()) < n) v->resize(static_cast<size_t>(n));
}

// The valid output-column range [lo, hi) for kernel column kx: those whose input column
// ox*stride + kx - pad lies inside [0, in_w).
void ValidRange(int out_w, int in_w, int stride, int pad, int kx, int* lo, int* hi);

// The segments of the tile of output rows [r0, r1) (rows counted over the batch's images).
void TileSegments(const MacLayer& L, int64_t r0, int64_t r1, std::vector<Segment>* segments);

// Row kk of the im2col of group g over `segments`: dst_row[j] for the segments' columns j is
// the input value that output column j multiplies with weight kk (0 in the padding).
void Im2ColRow(const MacLayer& L, const std::vector<MacImage>& images, int g,
               const std::vector<Segment>& segments, int kk, int8_t* dst_row);

// im2col of one tile for group g: col[kk * cols + j] for the tile's columns j. `scratch` is
// the calling thread's buffer for padded input rows.
void Im2ColTile(const MacLayer& L, const std::vector<MacImage>& images, int g,
                const std::vector<Segment>& segments, int64_t cols, int8_t* col,
                std::vector<int8_t>* scratch);

}  // namespace r2f::accel
