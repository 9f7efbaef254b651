#include "tensor/cuda/common.cuh"

/* Row-major C = alpha op(A) op(B) + beta C through cuBLAS, which is column-major: a row-major
 * matrix is its transpose in column-major, so C^T = op(B)^T op(A)^T swaps the operands. */
extern "C" void cuda_gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                              double alpha, const float *A, int64_t lda, const float *B,
                              int64_t ldb, double beta, float *C, int64_t ldc) {
  float a = (float)alpha, b = (float)beta;
  HY_CUBLAS_CHECK(cublasSgemm(hy_cublas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                              trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, (int)N, (int)M, (int)K, &a, B,
                              (int)ldb, A, (int)lda, &b, C, (int)ldc));
}
