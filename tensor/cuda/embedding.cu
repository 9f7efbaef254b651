#include "tensor/cuda/common.cuh"

#include <math.h>

/* Embedding rows: one block per index (grid-stride over the indices), its threads along the row,
 * so that a warp reads and writes consecutive floats. The block has as many threads as the row
 * needs, rounded up to a warp, at most HY_CUDA_THREADS. */

static unsigned row_threads(int64_t d) {
  int64_t t = (d + 31) / 32 * 32;
  return (unsigned)(t < HY_CUDA_THREADS ? t : (int64_t)HY_CUDA_THREADS);
}

static unsigned row_blocks(int64_t rows) {
  return (unsigned)(rows < 65535 * 16 ? rows : 65535 * 16);
}

/* The index range is checked on the host for CPU tensors only (tensor/embedding.c): reading GPU
 * indices back would stall every step. Here an index outside [0, V) reads nothing and makes its
 * output row NaN, which the loss shows. */
__global__ void embedding_kernel(int64_t n_idx, int64_t V, int64_t d, const int32_t *idx,
                                 const float *w, float *y) {
  for (int64_t i = blockIdx.x; i < n_idx; i += gridDim.x) {
    int64_t v = idx[i];
    float *yr = y + i * d;
    if (v < 0 || v >= V) {
      for (int64_t j = threadIdx.x; j < d; j += blockDim.x) yr[j] = NAN;
      continue;
    }
    const float *wr = w + v * d;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) yr[j] = wr[j];
  }
}

extern "C" void cuda_embedding_f32(int64_t n_idx, int64_t V, int64_t d, const int32_t *idx,
                                   const float *w, float *y) {
  if (n_idx == 0 || d == 0) return;
  embedding_kernel<<<row_blocks(n_idx), row_threads(d), 0, hy_cuda_stream()>>>(n_idx, V, d, idx, w,
                                                                               y);
  HY_CUDA_LAUNCHED(embedding_kernel);
}

/* gw[idx[i]] += gy[i]. Repeated indices add into the same row from different blocks, so the adds
 * are atomicAdd: the only float atomics of the network ops, and the reason why the embedding's
 * weight gradient on the GPU is not bitwise reproducible (the CPU sums repeats in index order). */
__global__ void embedding_backward_kernel(int64_t n_idx, int64_t V, int64_t d, const int32_t *idx,
                                          const float *gy, float *gw) {
  for (int64_t i = blockIdx.x; i < n_idx; i += gridDim.x) {
    int64_t v = idx[i];
    if (v < 0 || v >= V) continue; /* the forward made this row NaN */
    const float *g = gy + i * d;
    float *row = gw + v * d;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) atomicAdd(row + j, g[j]);
  }
}

extern "C" void cuda_embedding_backward_f32(int64_t n_idx, int64_t V, int64_t d, const int32_t *idx,
                                            const float *gy, float *gw) {
  if (n_idx == 0 || d == 0) return;
  embedding_backward_kernel<<<row_blocks(n_idx), row_threads(d), 0, hy_cuda_stream()>>>(
      n_idx, V, d, idx, gy, gw);
  HY_CUDA_LAUNCHED(embedding_backward_kernel);
}
