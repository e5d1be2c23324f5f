// Exact int8 x int8 -> int32 GEMM on the float units (via BLAS sgemm).
//
// Why this is exact: every operand is an integer with |v| <= 128, so every product is an
// integer with |p| <= 2^14, and any partial sum of at most kMaxExactChunk = 1024 such products
// is an integer with |s| <= 2^24. Every integer of magnitude <= 2^24 is a float32, so no
// rounding happens in any order of summation, with or without FMA. Longer reductions are cut
// into chunks of at most 1024, each converted to int32 and added in integer arithmetic.
// docs/accel_sim.md has the measurements that chose this over an int16 madd kernel.
#pragma once

#include <cstdint>

namespace r2f::accel {

inline constexpr int kMaxExactChunk = 1024;

// c[i*ldc + j] = sum_{t<k} a[i*lda + t] * b[t*ldb + j] for i < rows, j < cols, exactly.
// a and b hold int8 values as float. `scratch` holds rows*cols floats (used when it helps).
void ExactInt8Gemm(int rows, int cols, int k, const float* a, int lda, const float* b, int ldb,
                   int32_t* c, int ldc, float* scratch);

// The executor parallelises with OpenMP and calls sgemm from several threads at once, so BLAS
// itself must not start threads (two thread pools fighting over two cores cost more than they
// give). Sets OpenBLAS to one thread if OpenBLAS is the BLAS in use; idempotent; thread-safe.
// Note: process-wide, it also affects any other OpenBLAS caller in the process.
void UseSingleThreadedBlas();

}  // namespace r2f::accel
