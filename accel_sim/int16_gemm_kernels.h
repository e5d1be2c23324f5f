// Internal to the int8 GEMM (int16_gemm.h): the whole-GEMM drivers of each ISA, one file per
// instruction-set family so that each is compiled with only its own target attributes
// (int16_gemm_avx2.cc, int16_gemm_avx512.cc). Int8Gemm validates the arguments and dispatches.
//
// Every driver computes c[i*ldc + j] for all row blocks of w and all num_panels panels (the
// padded block of Int8Gemm's contract), reading panels in the layout its ISA runs on.
#pragma once

#include <cstdint>

#include "accel_sim/int16_gemm.h"

namespace r2f::accel::gemm_internal {

#if defined(__x86_64__) || defined(__i386__)
// kPairs16, vpmaddwd + vpaddd on 256-bit registers.
void GemmAvx2(const PackedWeights& w, const int16_t* panels, int num_panels, int32_t* c, int ldc);
// kQuads8, vpdpbusd on 256-bit registers (VEX-encoded AVX-VNNI).
void GemmAvxVnni(const PackedWeights& w, const uint8_t* panels, int num_panels, int32_t* c,
                 int ldc);
// kPairs16, vpmaddwd + vpaddd on 512-bit registers (AVX-512BW).
void GemmAvx512(const PackedWeights& w, const int16_t* panels, int num_panels, int32_t* c, int ldc);
// kQuads8, vpdpbusd on 512-bit registers (AVX512-VNNI).
void GemmAvx512Vnni(const PackedWeights& w, const uint8_t* panels, int num_panels, int32_t* c,
                    int ldc);

// kQuads8 packing of one k quad (rows r[0..3] of x, `cols` columns) for the first
// 4 * floor(cols / 64) panels: panel p's 64 bytes go to dst + p * panel_stride. Returns the
// number of panels written; the caller packs the rest.
int PackQuads8Avx512(const int8_t* const r[4], int cols, uint8_t* dst, int64_t panel_stride);
#endif

}  // namespace r2f::accel::gemm_internal
