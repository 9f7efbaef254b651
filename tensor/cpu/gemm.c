#include "tensor/cpu/real.h"

#include <cblas.h>

/* Row-major C = alpha op(A) op(B) + beta C through OpenBLAS. */
void K(cpu_gemm)(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
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
