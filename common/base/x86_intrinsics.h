// <immintrin.h> for the code that dispatches at run time (accel_sim kernels, the codec's
// packing), and R2F_X86 where it exists.
// GCC 12's AVX-512 headers build unmasked forms (vpsrad, vpmaxsd, vpmovsdb, vshufi64x2) on
// _mm512_undefined_epi32(), a self-initialised variable that -Wmaybe-uninitialized reports at
// every use (GCC bug 105593, fixed in GCC 13); the value is never read, so the warning is
// silenced for the header only.
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#define R2F_X86 1
#endif
