// im2col for the MAC layers' GEMM path (im2col.h).
#include "accel_sim/im2col.h"

#include <algorithm>
#include <cstring>

#include "common/base/x86_intrinsics.h"

namespace r2f::accel {

// The valid output-column range [lo, hi) for kernel column kx: those whose input column
// ox*stride + kx - pad lies inside [0, in_w).
void ValidRange(int out_w, int in_w, int stride, int pad, int kx, int* lo, int* hi) {
  // ox >= ceil((pad - kx) / stride) and ox <= floor((in_w - 1 + pad - kx) / stride)
  int a = pad - kx;
  int first = a <= 0 ? 0 : (a + stride - 1) / stride;
  int b = in_w - 1 + pad - kx;
  int last = b < 0 ? -1 : b / stride;
  *lo = std::min(first, out_w);
  *hi = std::max(*lo, std::min(last + 1, out_w));
}

void TileSegments(const MacLayer& L, int64_t r0, int64_t r1, std::vector<Segment>* segments) {
  segments->clear();
  int64_t b = r0 / L.out_h;
  int64_t r = r0;
  while (r < r1) {
    const int64_t end = std::min<int64_t>(r1, (b + 1) * L.out_h);
    segments->push_back({b, static_cast<int>(r - b * L.out_h), static_cast<int>(end - b * L.out_h),
                         (r - r0) * L.out_w});
    r = end;
    ++b;
  }
}

namespace {

// Short copies are the common case (rows of 4 to 28 pixels): fixed-size chunks compile to
// plain moves, where a memcpy call would cost more than the copy.
inline void CopyShort(int8_t* dst, const int8_t* src, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) std::memcpy(dst + i, src + i, 8);
  for (; i < n; ++i) dst[i] = src[i];
}

// Zeroing of the few bytes at row edges. Written out because GCC turns short zeroing loops
// into memset calls, whose fixed cost dominated im2col (measured: 5% of a forward pass).
inline void ZeroFew(int8_t* p, int n) {
  switch (n) {
    case 0:
      return;
    case 1:
      p[0] = 0;
      return;
    case 2:
      p[0] = p[1] = 0;
      return;
    case 3:
      p[0] = p[1] = p[2] = 0;
      return;
    default:
      std::memset(p, 0, static_cast<size_t>(n));
  }
}

// im2col rows of one segment for a stride-1 convolution whose output rows are as wide as its
// input rows ("same" width): output rows oy read input rows oy + ky - pad_h shifted by
// `offset` columns, so consecutive valid rows form one contiguous copy; the columns whose
// window leaves the row ([0, lo) and [hi, out_w)) picked up neighbouring-row bytes and are
// zeroed after. The copy is trimmed so that it never reads outside the input plane.
void Im2ColSameWidth(const MacLayer& L, const int8_t* plane, const Segment& s, int ky, int offset,
                     int lo, int hi, int8_t* dst) {
  const int w = L.out_w;
  const int valid0 = std::clamp(L.pad_h - ky, s.oy0, s.oy1);
  const int valid1 = std::clamp(L.in_h + L.pad_h - ky, valid0, s.oy1);
  // Rows whose window lies in the top or bottom padding (at most pad_h rows: skip empty calls).
  if (valid0 > s.oy0) std::memset(dst, 0, static_cast<size_t>(valid0 - s.oy0) * w);
  if (s.oy1 > valid1) {
    std::memset(dst + static_cast<int64_t>(valid1 - s.oy0) * w, 0,
                static_cast<size_t>(s.oy1 - valid1) * w);
  }
  if (valid0 == valid1) return;
  int8_t* out = dst + static_cast<int64_t>(valid0 - s.oy0) * w;
  const int8_t* in = plane + static_cast<int64_t>(valid0 + ky - L.pad_h) * w + offset;
  const int64_t n = static_cast<int64_t>(valid1 - valid0) * w;
  const int64_t first = offset < 0 ? -offset : 0;
  const int64_t last = offset > 0 ? n - offset : n;
  if (last > first) std::memcpy(out + first, in + first, static_cast<size_t>(last - first));
  for (int row = 0; row < valid1 - valid0; ++row) {
    int8_t* r = out + static_cast<int64_t>(row) * w;
    ZeroFew(r, lo);
    ZeroFew(r + hi, w - hi);
  }
}

}  // namespace

// Row kk of the im2col of group g over `segments`: dst_row[j] for the segments' columns j is
// the input value that output column j multiplies with weight kk (0 in the padding).
void Im2ColRow(const MacLayer& L, const std::vector<MacImage>& images, int g,
               const std::vector<Segment>& segments, int kk, int8_t* dst_row) {
  const int khw = L.kernel_h * L.kernel_w;
  const int64_t in_plane = static_cast<int64_t>(L.in_h) * L.in_w;
  const bool pointwise = L.kernel_h == 1 && L.kernel_w == 1 && L.stride_h == 1 && L.stride_w == 1 &&
                         L.pad_h == 0 && L.pad_w == 0;
  const bool same_width = L.stride_h == 1 && L.stride_w == 1 && L.out_w == L.in_w;
  const int c = g * L.group_in_c + kk / khw;
  const int ky = (kk % khw) / L.kernel_w;
  const int kx = kk % L.kernel_w;
  if (pointwise) {
    // Output pixel p of an image reads input pixel p: one copy per segment.
    for (const Segment& s : segments) {
      std::memcpy(dst_row + s.col0, images[s.image].input + c * in_plane + s.oy0 * L.in_w,
                  static_cast<size_t>((s.oy1 - s.oy0) * L.out_w));
    }
    return;
  }
  int lo, hi;
  ValidRange(L.out_w, L.in_w, L.stride_w, L.pad_w, kx, &lo, &hi);
  const int offset = kx - L.pad_w;
  if (same_width) {
    for (const Segment& s : segments) {
      Im2ColSameWidth(L, images[s.image].input + c * in_plane, s, ky, offset, lo, hi,
                      dst_row + s.col0);
    }
    return;
  }
  for (const Segment& s : segments) {
    const int8_t* plane = images[s.image].input + c * in_plane;
    int8_t* dst = dst_row + s.col0;
    for (int oy = s.oy0; oy < s.oy1; ++oy, dst += L.out_w) {
      const int iy = oy * L.stride_h + ky - L.pad_h;
      if (iy < 0 || iy >= L.in_h) {
        std::memset(dst, 0, static_cast<size_t>(L.out_w));
        continue;
      }
      const int8_t* src = plane + static_cast<int64_t>(iy) * L.in_w;
      ZeroFew(dst, lo);
      if (L.stride_w == 1) {
        CopyShort(dst + lo, src + lo + offset, hi - lo);
      } else {
        for (int ox = lo; ox < hi; ++ox) dst[ox] = src[ox * L.stride_w + offset];
      }
      ZeroFew(dst + hi, L.out_w - hi);
    }
  }
}

namespace {

// dst[0, n) = src[0, n) without a call: 16-byte moves, the last one overlapping the previous
// (n >= 16), or two overlapping 8- or 4-byte moves (n >= 4). Reads and writes exactly [0, n).
inline void CopyRow(int8_t* dst, const int8_t* src, int n) {
  if (n >= 16) {
    int i = 0;
    for (; i + 16 < n; i += 16) std::memcpy(dst + i, src + i, 16);
    std::memcpy(dst + n - 16, src + n - 16, 16);
  } else if (n >= 8) {
    std::memcpy(dst, src, 8);
    std::memcpy(dst + n - 8, src + n - 8, 8);
  } else if (n >= 4) {
    std::memcpy(dst, src, 4);
    std::memcpy(dst + n - 4, src + n - 4, 4);
  } else {
    for (int i = 0; i < n; ++i) dst[i] = src[i];
  }
}

// The out_rows rows of n bytes starting src_step apart at src, to contiguous dst. Rows shorter
// than 16 bytes move as 16 bytes while the block has room for it (the surplus is overwritten
// by the next rows), so most rows cost one load and one store; the last rows are exact. Reads
// up to 16 bytes from each row start: the caller's buffer has that slack.
inline void CopyRows(int8_t* dst, const int8_t* src, int64_t src_step, int out_rows, int n) {
  int oy = 0;
  if (n < 16) {
    const int wide_rows = out_rows - (16 + n - 1) / n + 1;  // (out_rows - oy) * n >= 16
    for (; oy < wide_rows; ++oy, src += src_step, dst += n) std::memcpy(dst, src, 16);
  }
  for (; oy < out_rows; ++oy, src += src_step, dst += n) CopyRow(dst, src, n);
}

// phase[p * ld + i] = src[i * stride + p] for p < stride and i * stride + p < n: the columns
// of a padded row split by phase, so that a strided window row becomes a contiguous copy.
// Stride 2 runs on SSE2 in blocks of 16 outputs per phase: it writes up to ld >=
// RoundUp(ceil(n / 2), 16) bytes per phase and reads up to 32 bytes beyond n (slack the
// caller provides; those lanes land past every position a window reads).
void SplitPhases(const int8_t* src, int n, int stride, int ld, int8_t* phase) {
#ifdef R2F_X86
  if (stride == 2) {
    const __m128i low = _mm_set1_epi16(0x00ff);
    for (int i = 0; i < (n + 1) / 2; i += 16) {
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i));
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i + 16));
      // Bytes widened to 0..255 in 16-bit lanes, so the saturating pack is exact.
      _mm_storeu_si128(reinterpret_cast<__m128i*>(phase + i),
                       _mm_packus_epi16(_mm_and_si128(a, low), _mm_and_si128(b, low)));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(phase + ld + i),
                       _mm_packus_epi16(_mm_srli_epi16(a, 8), _mm_srli_epi16(b, 8)));
    }
    return;
  }
#endif
  for (int p = 0; p < stride; ++p) {
    for (int i = 0; i * stride + p < n; ++i) phase[p * ld + i] = src[i * stride + p];
  }
}

// im2col of one segment of a tile for group g through a zero-padded copy of the input rows
// the segment reads, for every channel of the group: every (ky, kx) row of a channel is then
// out_w-byte copies from the padded rows (split by column phase for strided layers), with no
// bounds to work out per row. (The row-by-row form, Im2ColRow, spent most of its time on
// per-call arithmetic, short memcpy calls and byte gathers: on the 4- to 14-pixel rows of the
// later ResNet layers it cost more than the GEMM.)
void Im2ColSegmentPadded(const MacLayer& L, const std::vector<MacImage>& images, int g,
                         const Segment& s, int64_t cols, int8_t* col, std::vector<int8_t>* pad) {
  // The layer's fields in locals: every int8 store below may alias memory the compiler cannot
  // rule out (char types), which made it reload them from L after each store.
  const int in_h = L.in_h, in_w = L.in_w, pad_w = L.pad_w, out_w = L.out_w;
  const int kernel_h = L.kernel_h, kernel_w = L.kernel_w, stride_w = L.stride_w;
  const int wp = in_w + 2 * pad_w;
  const int row0 = s.oy0 * L.stride_h - L.pad_h;                 // first input row read
  const int rows = (s.oy1 - 1 - s.oy0) * L.stride_h + kernel_h;  // input rows read
  // Strided layers: each padded row split into stride_w phase rows of ld bytes.
  const int ld = stride_w == 1 ? 0 : ((wp + stride_w - 1) / stride_w + 15) / 16 * 16;
  const int group_in_c = L.group_in_c;
  // Per channel: the padded rows, then (strided layers) their phase rows; 64-byte aligned, with
  // 32+ bytes of slack after the padded rows for SplitPhases.
  const int64_t padded_bytes = (int64_t{rows} * wp + 64 + 63) / 64 * 64;
  const int64_t channel_bytes = padded_bytes + int64_t{rows} * stride_w * ld;
  Grow(pad, channel_bytes * group_in_c + 64);  // + CopyRows' slack
  int8_t* const scratch = pad->data();
  const int64_t row_ld = stride_w == 1 ? wp : int64_t{stride_w} * ld;
  const int64_t in_plane = static_cast<int64_t>(in_h) * in_w;
  const int khw = kernel_h * kernel_w;
  const int out_rows = s.oy1 - s.oy0;
  const int64_t src_step = L.stride_h * row_ld;
  const int8_t* const input = images[s.image].input + int64_t{g} * group_in_c * in_plane;
  int8_t* const col0 = col + s.col0;
  // Three passes over the channels, so that no load reads bytes stored a few cycles before:
  // such a load spans several recent stores and cannot be forwarded from them, which stalled
  // every row copy when each channel was padded just before its copies.
  for (int cl = 0; cl < group_in_c; ++cl) {
    const int8_t* plane = input + cl * in_plane;
    int8_t* padded = scratch + cl * channel_bytes;
    for (int r = 0; r < rows; ++r) {
      // Rows between the windows of a layer strided more than it is tall are never read.
      if (kernel_h < L.stride_h && r % L.stride_h >= kernel_h) continue;
      const int iy = row0 + r;
      int8_t* dst = padded + static_cast<int64_t>(r) * wp;
      if (iy < 0 || iy >= in_h) {
        std::memset(dst, 0, static_cast<size_t>(wp));
      } else {
        ZeroFew(dst, pad_w);
        CopyRow(dst + pad_w, plane + static_cast<int64_t>(iy) * in_w, in_w);
        ZeroFew(dst + pad_w + in_w, pad_w);
      }
    }
  }
  if (stride_w > 1) {
    for (int cl = 0; cl < group_in_c; ++cl) {
      int8_t* padded = scratch + cl * channel_bytes;
      for (int r = 0; r < rows; ++r) {
        if (kernel_h < L.stride_h && r % L.stride_h >= kernel_h) continue;
        SplitPhases(padded + static_cast<int64_t>(r) * wp, wp, stride_w, ld,
                    padded + padded_bytes + r * row_ld);
      }
    }
  }
  for (int cl = 0; cl < group_in_c; ++cl) {
    // Where row r, kernel column kx of the window reads: contiguous out_w bytes from here.
    const int8_t* base = scratch + cl * channel_bytes + (stride_w == 1 ? 0 : padded_bytes);
    for (int ky = 0; ky < kernel_h; ++ky) {
      for (int kx = 0; kx < kernel_w; ++kx) {
        const int kk = cl * khw + ky * kernel_w + kx;
        int8_t* dst = col0 + static_cast<int64_t>(kk) * cols;
        // Output column ox reads padded column ox * stride_w + kx: phase kx % stride_w,
        // position ox + kx / stride_w.
        const int8_t* src = stride_w == 1
                                ? base + ky * row_ld + kx
                                : base + ky * row_ld + (kx % stride_w) * ld + kx / stride_w;
        CopyRows(dst, src, src_step, out_rows, out_w);
      }
    }
  }
}

}  // namespace

// im2col of one tile for group g: col[kk * cols + j] for the tile's columns j. Pointwise
// convolutions (and linear layers) copy whole segments per row; the others go through padded
// input rows, segment by segment.
void Im2ColTile(const MacLayer& L, const std::vector<MacImage>& images, int g,
                const std::vector<Segment>& segments, int64_t cols, int8_t* col,
                std::vector<int8_t>* pad) {
  const bool pointwise = L.kernel_h == 1 && L.kernel_w == 1 && L.stride_h == 1 && L.stride_w == 1 &&
                         L.pad_h == 0 && L.pad_w == 0;
  if (pointwise) {
    for (int kk = 0; kk < L.k; ++kk) {
      Im2ColRow(L, images, g, segments, kk, col + static_cast<int64_t>(kk) * cols);
    }
    return;
  }
  for (const Segment& s : segments) Im2ColSegmentPadded(L, images, g, s, cols, col, pad);
}

}  // namespace r2f::accel
