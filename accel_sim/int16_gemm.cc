// The int8 GEMM's API: ISA detection and choice, packing, the portable kernels and the
// dispatch to the x86 drivers (int16_gemm_avx2.cc, int16_gemm_avx512.cc).
#include "accel_sim/int16_gemm.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "accel_sim/int16_gemm_kernels.h"
#include "common/base/cpu_features.h"

#include "common/base/x86_intrinsics.h"

namespace r2f::accel {
namespace {

int RoundUp(int v, int m) { return (v + m - 1) / m * m; }

int GroupSize(GemmLayout layout) { return layout == GemmLayout::kPairs16 ? 2 : 4; }

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "r2f int8 GEMM: %s\n", message.c_str());
  std::abort();
}

// One row block x one panel, portable, kPairs16.
void KernelGenericPairs(const int32_t* w, const int16_t* x, int k_pairs, int32_t* c, int ldc) {
  int32_t acc[kRowBlock][kPanelCols] = {};
  for (int t = 0; t < k_pairs; ++t) {
    const int16_t* xt = x + t * kPanelCols * 2;
    for (int r = 0; r < kRowBlock; ++r) {
      const int32_t wv = w[t * kRowBlock + r];
      const auto w0 = static_cast<int16_t>(wv & 0xffff);
      const auto w1 = static_cast<int16_t>(static_cast<uint32_t>(wv) >> 16);
      for (int j = 0; j < kPanelCols; ++j) {
        acc[r][j] += int32_t{w0} * xt[2 * j] + int32_t{w1} * xt[2 * j + 1];
      }
    }
  }
  for (int r = 0; r < kRowBlock; ++r) std::memcpy(c + r * ldc, acc[r], sizeof(acc[r]));
}

// One row block x one panel, portable, kQuads8: what vpdpbusd computes, in uint32 so that the
// additions are modulo 2^32 like the instruction's (and no signed overflow is undefined behaviour).
void KernelGenericQuads(const int32_t* w, const int32_t* acc_init, const uint8_t* x, int k_quads,
                        int32_t* c, int ldc) {
  uint32_t acc[kRowBlock][kPanelCols];
  for (int r = 0; r < kRowBlock; ++r) {
    for (int j = 0; j < kPanelCols; ++j) acc[r][j] = static_cast<uint32_t>(acc_init[r]);
  }
  for (int t = 0; t < k_quads; ++t) {
    const uint8_t* xt = x + t * kPanelCols * 4;
    for (int r = 0; r < kRowBlock; ++r) {
      const auto wv = static_cast<uint32_t>(w[t * kRowBlock + r]);
      int32_t wq[4];
      for (int q = 0; q < 4; ++q) wq[q] = static_cast<int8_t>(wv >> (8 * q));
      for (int j = 0; j < kPanelCols; ++j) {
        int32_t s = 0;  // |s| <= 4 * 255 * 128
        for (int q = 0; q < 4; ++q) s += int32_t{xt[4 * j + q]} * wq[q];
        acc[r][j] += static_cast<uint32_t>(s);
      }
    }
  }
  for (int r = 0; r < kRowBlock; ++r) {
    for (int j = 0; j < kPanelCols; ++j) c[r * ldc + j] = static_cast<int32_t>(acc[r][j]);
  }
}

void GemmGeneric(const PackedWeights& w, const void* panels, int num_panels, int32_t* c, int ldc) {
  const int64_t panel_bytes = PanelBytes(w.layout, w.k, kPanelCols);
  for (int p = 0; p < num_panels; ++p) {
    const auto* x = static_cast<const uint8_t*>(panels) + p * panel_bytes;
    for (int rb = 0; rb < w.row_blocks; ++rb) {
      const int32_t* wb = w.data.data() + static_cast<int64_t>(rb) * w.k_groups * kRowBlock;
      int32_t* cb = c + static_cast<int64_t>(rb) * kRowBlock * ldc + p * kPanelCols;
      if (w.layout == GemmLayout::kPairs16) {
        KernelGenericPairs(wb, reinterpret_cast<const int16_t*>(x), w.k_groups, cb, ldc);
      } else {
        KernelGenericQuads(wb, w.acc_init.data() + rb * kRowBlock, x, w.k_groups, cb, ldc);
      }
    }
  }
}

#ifdef R2F_X86
// kPairs16, one k pair of 16 columns: interleave 16 bytes of each row and sign-extend to
// int16 (SSE2: unpack a byte with itself, then shift the 16-bit lane right arithmetically).
void PackPairs16Sse2(const int8_t* a, const int8_t* b, int16_t* dst) {
  const __m128i va = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a));
  const __m128i vb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b));
  const __m128i lo = _mm_unpacklo_epi8(va, vb);
  const __m128i hi = _mm_unpackhi_epi8(va, vb);
  __m128i* out = reinterpret_cast<__m128i*>(dst);
  _mm_storeu_si128(out + 0, _mm_srai_epi16(_mm_unpacklo_epi8(lo, lo), 8));
  _mm_storeu_si128(out + 1, _mm_srai_epi16(_mm_unpackhi_epi8(lo, lo), 8));
  _mm_storeu_si128(out + 2, _mm_srai_epi16(_mm_unpacklo_epi8(hi, hi), 8));
  _mm_storeu_si128(out + 3, _mm_srai_epi16(_mm_unpackhi_epi8(hi, hi), 8));
}

// kQuads8, one k quad of 16 columns: a 4 x 16 byte transpose (bytes then 16-bit pairs
// interleaved) of the rows with the sign bit flipped, which maps int8 x to uint8 x + 128.
void PackQuads8Sse2(const int8_t* a, const int8_t* b, const int8_t* c, const int8_t* d,
                    uint8_t* dst) {
  const __m128i bias = _mm_set1_epi8(static_cast<char>(0x80));
  const __m128i va = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a)), bias);
  const __m128i vb = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b)), bias);
  const __m128i vc = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c)), bias);
  const __m128i vd = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(d)), bias);
  const __m128i ab_lo = _mm_unpacklo_epi8(va, vb), ab_hi = _mm_unpackhi_epi8(va, vb);
  const __m128i cd_lo = _mm_unpacklo_epi8(vc, vd), cd_hi = _mm_unpackhi_epi8(vc, vd);
  __m128i* out = reinterpret_cast<__m128i*>(dst);
  _mm_storeu_si128(out + 0, _mm_unpacklo_epi16(ab_lo, cd_lo));
  _mm_storeu_si128(out + 1, _mm_unpackhi_epi16(ab_lo, cd_lo));
  _mm_storeu_si128(out + 2, _mm_unpacklo_epi16(ab_hi, cd_hi));
  _mm_storeu_si128(out + 3, _mm_unpackhi_epi16(ab_hi, cd_hi));
}
#endif

void PackPanelsPairs16(const int8_t* x, int k, int cols, int ldx, int16_t* panels) {
  const int k_pairs = (k + 1) / 2;
  const int num_panels = (cols + kPanelCols - 1) / kPanelCols;
  const int64_t panel_stride = static_cast<int64_t>(k_pairs) * kPanelCols * 2;
  for (int t = 0; t < k_pairs; ++t) {
    const int8_t* a = x + static_cast<int64_t>(2 * t) * ldx;
    const int8_t* b = 2 * t + 1 < k ? a + ldx : nullptr;
    for (int p = 0; p < num_panels; ++p) {
      const int j0 = p * kPanelCols;
      int16_t* dst = panels + p * panel_stride + static_cast<int64_t>(t) * kPanelCols * 2;
      const int n = std::min(kPanelCols, cols - j0);
#ifdef R2F_X86
      if (n == kPanelCols && b != nullptr) {
        PackPairs16Sse2(a + j0, b + j0, dst);
        continue;
      }
      // Edge panel or odd k: the rows' columns in zeroed 16-byte rows (the partner row zero).
      int8_t edge[2][kPanelCols] = {};
      std::memcpy(edge[0], a + j0, static_cast<size_t>(n));
      if (b != nullptr) std::memcpy(edge[1], b + j0, static_cast<size_t>(n));
      PackPairs16Sse2(edge[0], edge[1], dst);
#else
      for (int j = 0; j < kPanelCols; ++j) {
        const bool in = j < n;
        dst[2 * j] = in ? a[j0 + j] : 0;
        dst[2 * j + 1] = in && b != nullptr ? b[j0 + j] : 0;
      }
#endif
    }
  }
}

void PackPanelsQuads8(const int8_t* x, int k, int cols, int ldx, uint8_t* panels) {
  const int k_quads = (k + 3) / 4;
  const int num_panels = (cols + kPanelCols - 1) / kPanelCols;
  const int64_t panel_stride = static_cast<int64_t>(k_quads) * kPanelCols * 4;
  for (int t = 0; t < k_quads; ++t) {
    const int rows = std::min(4, k - 4 * t);  // rows of x in this quad; the rest are x = 0
    const int8_t* r[4];
    for (int q = 0; q < 4; ++q)
      r[q] = q < rows ? x + static_cast<int64_t>(4 * t + q) * ldx : nullptr;
    int p = 0;
#ifdef R2F_X86
    // Groups of four whole panels with AVX-512BW when the CPU has it (the VNNI kernel's CPUs).
    static const bool avx512 = CpuHasGemmIsa(GemmIsa::kAvx512);
    if (avx512 && rows == 4) {
      p = gemm_internal::PackQuads8Avx512(
          r, cols, panels + static_cast<int64_t>(t) * kPanelCols * 4, panel_stride);
    }
#endif
    for (; p < num_panels; ++p) {
      const int j0 = p * kPanelCols;
      uint8_t* dst = panels + p * panel_stride + static_cast<int64_t>(t) * kPanelCols * 4;
      const int n = std::min(kPanelCols, cols - j0);
#ifdef R2F_X86
      if (n == kPanelCols && rows == 4) {
        PackQuads8Sse2(r[0] + j0, r[1] + j0, r[2] + j0, r[3] + j0, dst);
        continue;
      }
      // Edge panel or last quad of a k that is not a multiple of 4: the rows' columns in
      // zeroed 16-byte rows (x = 0 beyond them).
      int8_t edge[4][kPanelCols] = {};
      for (int q = 0; q < rows; ++q) std::memcpy(edge[q], r[q] + j0, static_cast<size_t>(n));
      PackQuads8Sse2(edge[0], edge[1], edge[2], edge[3], dst);
#else
      for (int j = 0; j < kPanelCols; ++j) {
        for (int q = 0; q < 4; ++q) {
          const int8_t v = j < n && r[q] != nullptr ? r[q][j0 + j] : 0;
          dst[4 * j + q] = static_cast<uint8_t>(v ^ 0x80);  // x + 128
        }
      }
#endif
    }
  }
}

bool CpuHas(GemmIsa isa) {
  const CpuFeatures& cpu = UsableCpuFeatures();
  switch (isa) {
    case GemmIsa::kAvx2:
      return cpu.avx2;
    case GemmIsa::kAvx512:
      return cpu.avx512bw;
    case GemmIsa::kAvxVnni:
      return cpu.avxvnni;
    case GemmIsa::kAvx512Vnni:
      return cpu.avx512bw && cpu.avx512vnni;
    default:
      return isa == GemmIsa::kAuto || isa == GemmIsa::kGeneric;
  }
}

constexpr GemmIsa kAllIsas[] = {GemmIsa::kGeneric, GemmIsa::kAvx2, GemmIsa::kAvx512,
                                GemmIsa::kAvxVnni, GemmIsa::kAvx512Vnni};
// Fastest first (measured, docs/accel_sim.md).
constexpr GemmIsa kPreference[] = {GemmIsa::kAvx512Vnni, GemmIsa::kAvxVnni, GemmIsa::kAvx512,
                                   GemmIsa::kAvx2, GemmIsa::kGeneric};

GemmIsa ChooseBestGemmIsa() {
  GemmIsa best = GemmIsa::kGeneric;
  for (GemmIsa isa : kPreference) {
    if (CpuHas(isa)) {
      best = isa;
      break;
    }
  }
  const char* env = std::getenv("R2F_GEMM_ISA");
  if (env == nullptr || *env == '\0') return best;
  for (GemmIsa isa : kAllIsas) {
    if (std::strcmp(env, GemmIsaName(isa)) != 0) continue;
    if (CpuHas(isa)) return isa;
    std::fprintf(stderr, "r2f: R2F_GEMM_ISA=%s: this CPU does not have it, using %s\n", env,
                 GemmIsaName(best));
    return best;
  }
  std::fprintf(stderr,
               "r2f: R2F_GEMM_ISA=%s is not one of generic, avx2, avx512, avx_vnni, avx512_vnni; "
               "using %s\n",
               env, GemmIsaName(best));
  return best;
}

}  // namespace

const char* GemmIsaName(GemmIsa isa) {
  switch (isa) {
    case GemmIsa::kAuto:
      return "auto";
    case GemmIsa::kGeneric:
      return "generic";
    case GemmIsa::kAvx2:
      return "avx2";
    case GemmIsa::kAvx512:
      return "avx512";
    case GemmIsa::kAvxVnni:
      return "avx_vnni";
    case GemmIsa::kAvx512Vnni:
      return "avx512_vnni";
  }
  return "?";
}

const char* GemmLayoutName(GemmLayout layout) {
  return layout == GemmLayout::kPairs16 ? "pairs16" : "quads8";
}

GemmLayout GemmIsaLayout(GemmIsa isa) {
  if (isa == GemmIsa::kAuto) isa = BestGemmIsa();
  return isa == GemmIsa::kAvxVnni || isa == GemmIsa::kAvx512Vnni ? GemmLayout::kQuads8
                                                                 : GemmLayout::kPairs16;
}

bool CpuHasGemmIsa(GemmIsa isa) { return CpuHas(isa); }

std::vector<GemmIsa> AvailableGemmIsas() {
  std::vector<GemmIsa> isas;
  for (GemmIsa isa : kAllIsas) {
    if (CpuHas(isa)) isas.push_back(isa);
  }
  return isas;
}

GemmIsa BestGemmIsa() {
  static const GemmIsa best = ChooseBestGemmIsa();
  return best;
}

PackedWeights PackWeights(const int8_t* w, int n, int k) {
  return PackWeights(w, n, k, GemmIsaLayout(GemmIsa::kAuto));
}

PackedWeights PackWeights(const int8_t* w, int n, int k, GemmLayout layout) {
  const int per = GroupSize(layout);
  PackedWeights p;
  p.layout = layout;
  p.n = n;
  p.k = k;
  p.k_groups = (k + per - 1) / per;
  p.row_blocks = (n + kRowBlock - 1) / kRowBlock;
  p.data.assign(static_cast<size_t>(p.row_blocks) * p.k_groups * kRowBlock, 0);
  if (layout == GemmLayout::kQuads8)
    p.acc_init.assign(static_cast<size_t>(p.row_blocks) * kRowBlock, 0);
  for (int i = 0; i < n; ++i) {
    const int8_t* row = w + static_cast<int64_t>(i) * k;
    uint32_t sum = 0;  // modulo 2^32: |128 * sum| reaches 2^31 at k = 2^17
    for (int t = 0; t < p.k_groups; ++t) {
      uint32_t v = 0;
      const int bits = 32 / per;
      for (int q = 0; q < per && per * t + q < k; ++q) {
        const int8_t wv = row[per * t + q];
        sum += static_cast<uint32_t>(int32_t{wv});
        v |= (static_cast<uint32_t>(int32_t{wv}) & ((1u << bits) - 1)) << (bits * q);
      }
      p.data[(static_cast<size_t>(i / kRowBlock) * p.k_groups + t) * kRowBlock + i % kRowBlock] =
          static_cast<int32_t>(v);
    }
    if (layout == GemmLayout::kQuads8) p.acc_init[i] = static_cast<int32_t>(0u - 128u * sum);
  }
  return p;
}

void PackedWeights::Set(int row, int kk, int8_t value) {
  // Two int16 or four int8 weights per 32-bit lane (this runs per changed weight).
  const bool pairs = layout == GemmLayout::kPairs16;
  const int shift = LaneShift(pairs, kk);
  const uint32_t mask = (pairs ? 0xFFFFu : 0xFFu) << shift;
  auto& lane = reinterpret_cast<uint32_t&>(data[static_cast<size_t>(LaneIndex(row, kk))]);
  const auto old = static_cast<int8_t>(lane >> shift);
  lane = (lane & ~mask) | ((static_cast<uint32_t>(int32_t{value}) << shift) & mask);
  // acc_init = -128 * (sum of the row's weights), modulo 2^32 as PackWeights computes it.
  if (!pairs) {
    acc_init[row] = static_cast<int32_t>(static_cast<uint32_t>(acc_init[row]) -
                                         128u * static_cast<uint32_t>(int32_t{value} - old));
  }
}

int64_t PanelBytes(GemmLayout layout, int k, int cols) {
  const int per = GroupSize(layout);
  // One k group of a panel is kPanelCols lanes of 4 bytes in either layout.
  return static_cast<int64_t>(RoundUp(cols, kPanelCols)) * ((k + per - 1) / per) * 4;
}

void PackPanels(GemmLayout layout, const int8_t* x, int k, int cols, int ldx, void* panels) {
  if (layout == GemmLayout::kPairs16) {
    PackPanelsPairs16(x, k, cols, ldx, static_cast<int16_t*>(panels));
  } else {
    PackPanelsQuads8(x, k, cols, ldx, static_cast<uint8_t*>(panels));
  }
}

void Int8Gemm(const PackedWeights& w, const void* panels, int cols, int32_t* c, int ldc,
              GemmIsa isa) {
  if (isa == GemmIsa::kAuto) {
    isa = BestGemmIsa();
    if (GemmIsaLayout(isa) != w.layout) {
      // Weights packed for another kernel (a test, or a forced layout): the best kernel of
      // theirs. Every ISA with AVX-VNNI or AVX512-VNNI also has AVX2.
      isa = GemmIsa::kGeneric;
      for (GemmIsa candidate : kPreference) {
        if (CpuHas(candidate) && GemmIsaLayout(candidate) == w.layout) {
          isa = candidate;
          break;
        }
      }
    }
  } else if (!CpuHas(isa) || (isa != GemmIsa::kGeneric && GemmIsaLayout(isa) != w.layout)) {
    Die(std::string("kernel ") + GemmIsaName(isa) + " cannot run " + GemmLayoutName(w.layout) +
        " weights on this CPU");
  }
  const int num_panels = (cols + kPanelCols - 1) / kPanelCols;
  switch (isa) {
#ifdef R2F_X86
    case GemmIsa::kAvx2:
      return gemm_internal::GemmAvx2(w, static_cast<const int16_t*>(panels), num_panels, c, ldc);
    case GemmIsa::kAvx512:
      return gemm_internal::GemmAvx512(w, static_cast<const int16_t*>(panels), num_panels, c, ldc);
    case GemmIsa::kAvxVnni:
      return gemm_internal::GemmAvxVnni(w, static_cast<const uint8_t*>(panels), num_panels, c, ldc);
    case GemmIsa::kAvx512Vnni:
      return gemm_internal::GemmAvx512Vnni(w, static_cast<const uint8_t*>(panels), num_panels, c,
                                           ldc);
#endif
    default:
      return GemmGeneric(w, panels, num_panels, c, ldc);
  }
}

}  // namespace r2f::accel
