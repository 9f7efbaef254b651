/* What every CUDA kernel file of hyla needs: status checks, launch sizes and the cuBLAS handle.
 * Kernels run on the default stream, in order, so a launch needs no synchronization until its
 * result is read on the host. */
#ifndef HYLA_CUDA_COMMON_CUH
#define HYLA_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "tensor/arena.h"
#include "tensor/cuda/kernels.h"

#define HY_CUDA_CHECK(call)                                                                        \
  do {                                                                                             \
    cudaError_t hy_status_ = (call);                                                               \
    if (hy_status_ != cudaSuccess)                                                                 \
      hy_die("cuda", "%s failed: %s (%s:%d)", #call, cudaGetErrorString(hy_status_), __FILE__,     \
             __LINE__);                                                                            \
  } while (0)

/* After each launch: a bad configuration shows here, a fault in the kernel at the next sync. */
#define HY_CUDA_LAUNCHED(kernel) HY_CUDA_CHECK(cudaGetLastError())

#define HY_CUBLAS_CHECK(call)                                                                      \
  do {                                                                                             \
    cublasStatus_t hy_status_ = (call);                                                            \
    if (hy_status_ != CUBLAS_STATUS_SUCCESS)                                                       \
      hy_die("cublas", "%s failed: status %d (%s:%d)", #call, (int)hy_status_, __FILE__,           \
             __LINE__);                                                                            \
  } while (0)

enum { HY_CUDA_THREADS = 256 };

/* Blocks of HY_CUDA_THREADS covering n items, capped so that grid-stride loops take the rest. */
static inline unsigned hy_cuda_blocks(int64_t n) {
  int64_t b = (n + HY_CUDA_THREADS - 1) / HY_CUDA_THREADS;
  if (b < 1) b = 1;
  if (b > 65535 * 8) b = 65535 * 8;
  return (unsigned)b;
}

#define HY_GRID_STRIDE(i, n)                                                                       \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                        \
       i += (int64_t)gridDim.x * blockDim.x)

cublasHandle_t hy_cublas(void); /* created on first use, destroyed at exit */

#endif
