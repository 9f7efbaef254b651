#include "tensor/cuda/common.cuh"

#include <cuda_bf16.h>

extern "C" {
#include "tensor/cuda/runtime.h"
}

static bool bf16_inputs; /* hy_cuda_set_gemm_bf16 */

extern "C" void hy_cuda_set_gemm_bf16(bool on) { bf16_inputs = on; }

/* A packed f32 array rounded to bf16, four elements a thread (one 16-byte load, one 8-byte
 * store): the conversion is bound by memory, so each thread moves as much as it can. */
__global__ void to_bf16_flat4(const float4 *src, int64_t n4, uint2 *dst) {
  HY_GRID_STRIDE(i, n4) {
    float4 v = src[i];
    __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
    dst[i] = make_uint2(*reinterpret_cast<uint32_t *>(&lo), *reinterpret_cast<uint32_t *>(&hi));
  }
}

/* Rows x cols of a row-major f32 matrix with leading dimension ld, rounded to bf16, packed. The
 * grid's y walks the rows, so no element pays for a division. */
__global__ void to_bf16_rows(const float *src, int64_t ld, int64_t rows, int64_t cols,
                             __nv_bfloat16 *dst) {
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y)
    for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < cols;
         c += (int64_t)gridDim.x * blockDim.x)
      dst[r * cols + c] = __float2bfloat16(src[r * ld + c]);
}

static void launch_to_bf16(const float *src, int64_t ld, int64_t rows, int64_t cols,
                           __nv_bfloat16 *dst) {
  int64_t n = rows * cols;
  bool packed = ld == cols || rows == 1;
  if (packed && n % 4 == 0 && (uintptr_t)src % 16 == 0 && (uintptr_t)dst % 16 == 0) {
    to_bf16_flat4<<<hy_cuda_blocks(n / 4), HY_CUDA_THREADS>>>((const float4 *)src, n / 4,
                                                              (uint2 *)dst);
    HY_CUDA_LAUNCHED(to_bf16_flat4);
    return;
  }
  if (packed) { /* one row of all the elements */
    cols = n;
    rows = 1;
  }
  int64_t col_blocks = (cols + HY_CUDA_THREADS - 1) / HY_CUDA_THREADS;
  dim3 grid((unsigned)(col_blocks < 1024 ? col_blocks : 1024),
            (unsigned)(rows < 65535 ? rows : 65535));
  to_bf16_rows<<<grid, HY_CUDA_THREADS>>>(src, ld, rows, cols, dst);
  HY_CUDA_LAUNCHED(to_bf16_rows);
}

/* Two scratch buffers for the bf16 copies of A and B, grown as needed and kept: kernels run in
 * order on one stream, so each GEMM may reuse them. They grow only in a run's first steps. */
static __nv_bfloat16 *scratch[2];
static size_t scratch_elems[2];

static void release_scratch(void) {
  for (int i = 0; i < 2; i++) hy_cuda_free(scratch[i]);
}

static const __nv_bfloat16 *packed_bf16(int which, const float *src, int64_t ld, int64_t rows,
                                        int64_t cols) {
  size_t n = (size_t)(rows * cols);
  if (n > scratch_elems[which]) {
    static bool hooked;
    if (!hooked) hooked = !atexit(release_scratch);
    hy_cuda_free(scratch[which]);
    scratch[which] = (__nv_bfloat16 *)hy_cuda_malloc(n * sizeof(__nv_bfloat16));
    scratch_elems[which] = n;
  }
  if (n) launch_to_bf16(src, ld, rows, cols, scratch[which]);
  return scratch[which];
}

/* Row-major C = alpha op(A) op(B) + beta C through cuBLAS, which is column-major: a row-major
 * matrix is its transpose in column-major, so C^T = op(B)^T op(A)^T swaps the operands. With bf16
 * inputs A and B are rounded to bf16 first and the tensor cores accumulate in f32. */
extern "C" void cuda_gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                              double alpha, const float *A, int64_t lda, const float *B,
                              int64_t ldb, double beta, float *C, int64_t ldc) {
  float a = (float)alpha, b = (float)beta;
  cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (!bf16_inputs) {
    HY_CUBLAS_CHECK(cublasSgemm(hy_cublas(), op_b, op_a, (int)N, (int)M, (int)K, &a, B, (int)ldb, A,
                                (int)lda, &b, C, (int)ldc));
    return;
  }
  /* As stored (row-major): A is M x K, or K x M transposed; B is K x N, or N x K. */
  int64_t a_cols = trans_a ? M : K, b_cols = trans_b ? K : N;
  const __nv_bfloat16 *Ah = packed_bf16(0, A, lda, trans_a ? K : M, a_cols);
  const __nv_bfloat16 *Bh = packed_bf16(1, B, ldb, trans_b ? N : K, b_cols);
  HY_CUBLAS_CHECK(cublasGemmEx(hy_cublas(), op_b, op_a, (int)N, (int)M, (int)K, &a, Bh, CUDA_R_16BF,
                               (int)b_cols, Ah, CUDA_R_16BF, (int)a_cols, &b, C, CUDA_R_32F,
                               (int)ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}
