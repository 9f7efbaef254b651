/* What every CUDA kernel file of hyla needs: status checks, launch sizes, the stream and the
 * cuBLAS handle. Kernels run in order on hyla's one stream (hy_cuda_stream), so a launch needs no
 * synchronization until its result is read on the host. */
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

/* The sum of v over a warp, in a fixed order, in lane 0. */
template <typename T> __device__ __forceinline__ T hy_warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

/* The sum over the block (blockDim.x a multiple of 32) of every thread's v, in a fixed order,
 * handed to all threads; its shared memory is free again on return, so it can be called at once
 * for the next row. */
template <typename T> __device__ T hy_block_sum(T v) {
  __shared__ T part[32];
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  v = hy_warp_sum(v);
  if (lane == 0) part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = hy_warp_sum(lane < n_warps ? part[lane] : T(0));
    if (lane == 0) part[0] = v;
  }
  __syncthreads();
  v = part[0];
  __syncthreads();
  return v;
}

/* Raise a kernel's dynamic shared memory limit once (per instantiation) when it needs more than
 * the default 48 KiB. */
template <typename Kernel> void hy_allow_shared(Kernel kernel, size_t bytes, bool *done) {
  if (*done || bytes <= 48 * 1024) return;
  HY_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
  *done = true;
}

cublasHandle_t hy_cublas(void); /* created on first use, on hyla's stream; destroyed at exit */
extern "C" cudaStream_t hy_cuda_stream(void); /* tensor/cuda/runtime.h */

#endif
