#include "tensor/cuda/common.cuh"

extern "C" {
#include "tensor/arena.h"
}

#include <math.h>

/* Cross entropy over rows of V logits: one block of HY_CUDA_THREADS per row (grid-stride over the
 * rows), its threads strided along the row so that each warp reads consecutive floats. */

static unsigned row_blocks(int64_t rows) {
  return (unsigned)(rows < 65535 * 16 ? rows : 65535 * 16);
}

/* A running log-sum-exp (m, s): the values seen sum to s e^m, m their max. Adding x rescales s
 * when x is the new max; -inf adds nothing (and would make -inf - -inf); NaN propagates. */
__device__ static inline void lse_add(float &m, float &s, float x) {
  if (x > m) {
    s = s * expf(m - x) + 1.0f;
    m = x;
  } else {
    s += x == -INFINITY ? 0.0f : expf(x - m);
  }
}

__device__ static inline void lse_merge(float &m, float &s, float m2, float s2) {
  float mm = fmaxf(m, m2);
  if (mm == -INFINITY) { /* nothing but -inf on either side */
    s += s2;
    return;
  }
  s = s * expf(m - mm) + s2 * expf(m2 - mm);
  m = mm;
}

/* Merge every thread's (m, s) into the block's, returned to all threads. blockDim.x is a multiple
 * of 32; the merge order is fixed by the block size, so results are reproducible. */
__device__ static void block_lse(float &m, float &s) {
  __shared__ float sm[32], ss[32];
  for (int o = 16; o > 0; o >>= 1) {
    float m2 = __shfl_down_sync(0xffffffffu, m, o), s2 = __shfl_down_sync(0xffffffffu, s, o);
    lse_merge(m, s, m2, s2);
  }
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  if (lane == 0) {
    sm[warp] = m;
    ss[warp] = s;
  }
  __syncthreads();
  if (warp == 0) {
    m = lane < n_warps ? sm[lane] : -INFINITY;
    s = lane < n_warps ? ss[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) {
      float m2 = __shfl_down_sync(0xffffffffu, m, o), s2 = __shfl_down_sync(0xffffffffu, s, o);
      lse_merge(m, s, m2, s2);
    }
    if (lane == 0) {
      sm[0] = m;
      ss[0] = s;
    }
  }
  __syncthreads();
  m = sm[0];
  s = ss[0];
  __syncthreads(); /* sm and ss are free again for the next row */
}

/* Per row: lse[r], and the row's loss lse - logits[target] in double (0 for an ignored target)
 * with valid[r] = 1 when the target counts. A target outside [0, V) that is not ignore_index
 * (checked on the host for CPU tensors only) reads nothing and makes the row's loss NaN. */
__global__ void cross_entropy_rows_kernel(int64_t rows, int64_t V, const float *logits,
                                          const int32_t *targets, int ignore_index, float *lse,
                                          double *row_loss, int32_t *valid) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *x = logits + r * V;
    float m = -INFINITY, s = 0.0f;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) lse_add(m, s, x[j]);
    block_lse(m, s);
    if (threadIdx.x == 0) {
      /* As the CPU: the max plus the log of the sum, in double, rounded once. */
      float l = (float)((double)m + log((double)s));
      lse[r] = l;
      int32_t t = targets[r];
      if (t == ignore_index) {
        row_loss[r] = 0.0;
        valid[r] = 0;
      } else {
        row_loss[r] = t >= 0 && t < V ? (double)l - (double)x[t] : (double)NAN;
        valid[r] = 1;
      }
    }
  }
}

struct ce_result {
  double total;
  long long count;
};

/* One block adds the rows' losses (double) and counts, in an order fixed by the block size. */
__global__ void cross_entropy_sum_kernel(int64_t rows, const double *row_loss, const int32_t *valid,
                                         ce_result *out) {
  double total = 0.0;
  long long count = 0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    total += row_loss[r];
    count += valid[r];
  }
  total = hy_block_sum(total);
  count = hy_block_sum(count);
  if (threadIdx.x == 0) {
    out->total = total;
    out->count = count;
  }
}

/* The summed loss and the count come back to the host: the one copy (and wait) of the op. */
extern "C" double cuda_cross_entropy_f32(int64_t rows, int64_t V, const float *logits,
                                         const int32_t *targets, int ignore_index, float *lse,
                                         int64_t *count) {
  *count = 0;
  if (rows == 0) return 0.0;
  /* Scratch in the step arena: the result, then per-row losses and flags. */
  size_t loss_at = 64, valid_at = loss_at + (size_t)rows * sizeof(double);
  char *scratch = (char *)hy_arena_alloc_on(HY_CUDA, valid_at + (size_t)rows * sizeof(int32_t));
  ce_result *result = (ce_result *)scratch;
  double *row_loss = (double *)(scratch + loss_at);
  int32_t *valid = (int32_t *)(scratch + valid_at);
  cross_entropy_rows_kernel<<<row_blocks(rows), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(
      rows, V, logits, targets, ignore_index, lse, row_loss, valid);
  HY_CUDA_LAUNCHED(cross_entropy_rows_kernel);
  cross_entropy_sum_kernel<<<1, HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(rows, row_loss, valid,
                                                                        result);
  HY_CUDA_LAUNCHED(cross_entropy_sum_kernel);
  ce_result host;
  HY_CUDA_CHECK(cudaMemcpy(&host, result, sizeof host, cudaMemcpyDeviceToHost));
  *count = host.count;
  return host.total;
}

/* glogits += scale (softmax(logits) - onehot(target)) on rows whose target is not ignored; the
 * target's element gets both terms in the CPU's order. */
__global__ void cross_entropy_backward_kernel(int64_t rows, int64_t V, const float *logits,
                                              const int32_t *targets, int ignore_index,
                                              const float *lse, float c, float *glogits) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    int64_t t = targets[r];
    if (t == ignore_index) continue; /* the same for the whole block */
    const float *x = logits + r * V;
    float *g = glogits + r * V, l = lse[r];
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
      float v = g[j] + c * expf(x[j] - l);
      if (j == t) v -= c;
      g[j] = v;
    }
  }
}

extern "C" void cuda_cross_entropy_backward_f32(int64_t rows, int64_t V, const float *logits,
                                                const int32_t *targets, int ignore_index,
                                                const float *lse, double scale, float *glogits) {
  if (rows == 0 || V == 0) return;
  cross_entropy_backward_kernel<<<row_blocks(rows), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(
      rows, V, logits, targets, ignore_index, lse, (float)scale, glogits);
  HY_CUDA_LAUNCHED(cross_entropy_backward_kernel);
}
