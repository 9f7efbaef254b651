#include "tensor/cuda/common.cuh"

/* Softmax and log-sum-exp over the rows of a [rows, n] matrix, as cpu_softmax and cpu_logsumexp:
 * one block per row. The row's max m and sum s = sum_j e^(x_j - m) come from one pass with a
 * running max (each thread rescales its sum when its max grows, and the threads' pairs are merged
 * the same way), so no e^x overflows; a row of all -inf has log-sum-exp -inf. */

namespace {

/* (m, s): a max and the sum of e^(x - m) over the elements seen; m = -inf, s = 0 when none (or all
 * -inf) were. Merging rescales the smaller side's sum to the larger max. */
struct max_sum {
  float m, s;
};

__device__ __forceinline__ max_sum merge(max_sum a, max_sum b) {
  float m = fmaxf(a.m, b.m);
  if (m == -INFINITY) return {m, 0.0f};
  float sa = a.m == -INFINITY ? 0.0f : a.s * expf(a.m - m);
  float sb = b.m == -INFINITY ? 0.0f : b.s * expf(b.m - m);
  return {m, sa + sb};
}

__device__ __forceinline__ max_sum add(max_sum a, float x) {
  if (x > a.m) return {x, (a.m == -INFINITY ? 0.0f : a.s * expf(a.m - x)) + 1.0f};
  if (x == -INFINITY) return a;
  return {a.m, a.s + expf(x - a.m)}; /* NaN x (or m = +inf) gives s = NaN, as on the CPU */
}

__device__ max_sum block_max_sum(max_sum v) {
  __shared__ float ms[32], ss[32];
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  for (int o = 16; o > 0; o >>= 1)
    v = merge(v, {__shfl_down_sync(0xffffffffu, v.m, o), __shfl_down_sync(0xffffffffu, v.s, o)});
  __syncthreads();
  if (lane == 0) {
    ms[warp] = v.m;
    ss[warp] = v.s;
  }
  __syncthreads();
  if (warp == 0) {
    v = lane < n_warps ? max_sum{ms[lane], ss[lane]} : max_sum{-INFINITY, 0.0f};
    for (int o = 16; o > 0; o >>= 1)
      v = merge(v, {__shfl_down_sync(0xffffffffu, v.m, o), __shfl_down_sync(0xffffffffu, v.s, o)});
    if (lane == 0) {
      ms[0] = v.m;
      ss[0] = v.s;
    }
  }
  __syncthreads();
  return {ms[0], ss[0]};
}

__device__ __forceinline__ max_sum row_max_sum(const float *__restrict__ xr, int64_t n) {
  max_sum v = {-INFINITY, 0.0f};
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) v = add(v, xr[j]);
  return block_max_sum(v);
}

__global__ void softmax_rows(int64_t rows, int64_t n, const float *__restrict__ x,
                             float *__restrict__ y) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *xr = x + r * n;
    float *yr = y + r * n;
    max_sum v = row_max_sum(xr, n);
    float inv = 1 / v.s;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = expf(xr[j] - v.m) * inv;
  }
}

/* gx += y (gy - sum_j gy_j y_j) */
__global__ void softmax_grad_rows(int64_t rows, int64_t n, const float *__restrict__ y,
                                  const float *__restrict__ gy, float *__restrict__ gx) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *yr = y + r * n, *gr = gy + r * n;
    float *gxr = gx + r * n;
    float dot = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) dot += gr[j] * yr[j];
    dot = hy_block_sum(dot);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) gxr[j] += yr[j] * (gr[j] - dot);
  }
}

__global__ void logsumexp_rows(int64_t rows, int64_t n, const float *__restrict__ x,
                               float *__restrict__ y) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    max_sum v = row_max_sum(x + r * n, n);
    if (threadIdx.x == 0) y[r] = v.m == -INFINITY ? v.m : v.m + logf(v.s);
  }
}

/* gx += gy softmax(x) = gy e^(x - lse); rows whose lse is -inf (all -inf) get nothing. */
__global__ void logsumexp_grad_rows(int64_t rows, int64_t n, const float *__restrict__ x,
                                    const float *__restrict__ y, const float *__restrict__ gy,
                                    float *__restrict__ gx) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    float lse = y[r], g = gy[r];
    if (lse == -INFINITY) continue;
    const float *xr = x + r * n;
    float *gxr = gx + r * n;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) gxr[j] += g * expf(xr[j] - lse);
  }
}

/* A warp for short rows, up to 512 threads for long ones; rows beyond the grid loop. */
static unsigned threads_for(int64_t n) {
  return n >= 4096 ? 512 : n >= 512 ? 256 : n >= 64 ? 64 : 32;
}

static unsigned grid_for(int64_t rows) { return (unsigned)(rows < 65535 * 8 ? rows : 65535 * 8); }

} // namespace

extern "C" void cuda_softmax_f32(int64_t rows, int64_t n, const float *x, float *y) {
  if (rows == 0 || n == 0) return;
  softmax_rows<<<grid_for(rows), threads_for(n), 0, hy_cuda_stream()>>>(rows, n, x, y);
  HY_CUDA_LAUNCHED(softmax_rows);
}

extern "C" void cuda_softmax_backward_f32(int64_t rows, int64_t n, const float *y, const float *gy,
                                          float *gx) {
  if (rows == 0 || n == 0) return;
  softmax_grad_rows<<<grid_for(rows), threads_for(n), 0, hy_cuda_stream()>>>(rows, n, y, gy, gx);
  HY_CUDA_LAUNCHED(softmax_grad_rows);
}

extern "C" void cuda_logsumexp_f32(int64_t rows, int64_t n, const float *x, float *y) {
  if (rows == 0 || n == 0) return;
  logsumexp_rows<<<grid_for(rows), threads_for(n), 0, hy_cuda_stream()>>>(rows, n, x, y);
  HY_CUDA_LAUNCHED(logsumexp_rows);
}

extern "C" void cuda_logsumexp_backward_f32(int64_t rows, int64_t n, const float *x, const float *y,
                                            const float *gy, float *gx) {
  if (rows == 0 || n == 0) return;
  logsumexp_grad_rows<<<grid_for(rows), threads_for(n), 0, hy_cuda_stream()>>>(rows, n, x, y, gy,
                                                                               gx);
  HY_CUDA_LAUNCHED(logsumexp_grad_rows);
}
