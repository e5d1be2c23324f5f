#include "accel_sim/exact_gemm.h"

#include <mutex>

// The CBLAS entry point, declared here so that the build needs no particular cblas.h (the
// reference and OpenBLAS headers disagree on details). Enum arguments are passed as int.
extern "C" {
void cblas_sgemm(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                 const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc);
// OpenBLAS only; weak, so that the library also links and runs against the reference BLAS.
void openblas_set_num_threads(int threads) __attribute__((weak));
}

namespace r2f::accel {
namespace {

constexpr int kCblasRowMajor = 101;
constexpr int kCblasNoTrans = 111;

}  // namespace

void UseSingleThreadedBlas() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (openblas_set_num_threads != nullptr) openblas_set_num_threads(1);
  });
}

void ExactInt8Gemm(int rows, int cols, int k, const float* a, int lda, const float* b, int ldb,
                   int32_t* c, int ldc, float* scratch) {
  if (rows <= 0 || cols <= 0) return;
  if (k <= 0) {
    for (int i = 0; i < rows; ++i) {
      for (int j = 0; j < cols; ++j) c[static_cast<int64_t>(i) * ldc + j] = 0;
    }
    return;
  }
  // Equal chunks (rather than 1024 + remainder) keep every sgemm call well shaped.
  const int chunks = (k + kMaxExactChunk - 1) / kMaxExactChunk;
  const int chunk = (k + chunks - 1) / chunks;
  for (int k0 = 0; k0 < k; k0 += chunk) {
    const int kc = k - k0 < chunk ? k - k0 : chunk;
    cblas_sgemm(kCblasRowMajor, kCblasNoTrans, kCblasNoTrans, rows, cols, kc, 1.0f, a + k0, lda,
                b + static_cast<int64_t>(k0) * ldb, ldb, 0.0f, scratch, cols);
    for (int i = 0; i < rows; ++i) {
      const float* s = scratch + static_cast<int64_t>(i) * cols;
      int32_t* out = c + static_cast<int64_t>(i) * ldc;
      if (k0 == 0) {
        for (int j = 0; j < cols; ++j) out[j] = static_cast<int32_t>(s[j]);
      } else {
        for (int j = 0; j < cols; ++j) out[j] += static_cast<int32_t>(s[j]);
      }
    }
  }
}

}  // namespace r2f::accel
