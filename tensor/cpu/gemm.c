#include "tensor/cpu/real.h"

#include <cblas.h>
#include <omp.h>

/* OpenBLAS runs single-threaded (tensor/threads.c) and hyla splits large products over its own
 * OpenMP threads: one thread pool instead of two that spin against each other. */

static void blas(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
                 const real *A, int64_t lda, const real *B, int64_t ldb, double beta, real *C,
                 int64_t ldc) {
  enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
  enum CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
#if defined(HY_REAL_F64)
  cblas_dgemm(CblasRowMajor, ta, tb, (blasint)M, (blasint)N, (blasint)K, alpha, A, (blasint)lda, B,
              (blasint)ldb, beta, C, (blasint)ldc);
#else
  cblas_sgemm(CblasRowMajor, ta, tb, (blasint)M, (blasint)N, (blasint)K, (float)alpha, A,
              (blasint)lda, B, (blasint)ldb, (float)beta, C, (blasint)ldc);
#endif
}

#if defined(HY_REAL_F32)
/* Pin OpenBLAS to one thread as soon as the program loads, whether or not it ever calls
 * hy_threads_set. */
__attribute__((constructor)) static void pin_blas_threads(void) { openblas_set_num_threads(1); }
#endif

/* Products smaller than this many multiply-adds run on one thread. */
#define GEMM_PAR_MIN (1 << 20)

/* Row-major C = alpha op(A) op(B) + beta C. Split into contiguous blocks of C's rows (or of its
 * columns when there are few rows), one per thread; each block is one BLAS call. */
void K(cpu_gemm)(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
                 const real *A, int64_t lda, const real *B, int64_t ldb, double beta, real *C,
                 int64_t ldc) {
  int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (threads == 1 || M * N * K < GEMM_PAR_MIN) {
    blas(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  bool by_rows = M >= N || M >= 16 * threads;
  int64_t len = by_rows ? M : N;
  int64_t block = (len + threads - 1) / threads;
  block = (block + 7) / 8 * 8; /* whole vector widths per thread */
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int t = 0; t < threads; t++) {
    int64_t start = t * block, n = len - start < block ? len - start : block;
    if (n <= 0) continue;
    if (by_rows) {
      const real *a = trans_a ? A + start : A + start * lda;
      blas(trans_a, trans_b, n, N, K, alpha, a, lda, B, ldb, beta, C + start * ldc, ldc);
    } else {
      const real *b = trans_b ? B + start * ldb : B + start;
      blas(trans_a, trans_b, M, n, K, alpha, A, lda, b, ldb, beta, C + start, ldc);
    }
  }
}
