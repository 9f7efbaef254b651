#include "tensor/cuda/common.cuh"

extern "C" {
#include "tensor/arena.h"
}

/* RMSNorm over rows of d: one block per row (grid-stride over the rows) with as many threads as
 * the row needs, rounded up to a warp, at most HY_CUDA_THREADS; threads stride along the row so
 * that each warp reads consecutive floats. The weight gradient is a sum over rows: per-block
 * partial sums over chunks of rows, then one pass that adds the chunks in order. No atomics: the
 * same inputs give the same bits. */

static unsigned row_threads(int64_t d) {
  int64_t t = (d + 31) / 32 * 32;
  return (unsigned)(t < HY_CUDA_THREADS ? t : (int64_t)HY_CUDA_THREADS);
}

static unsigned row_blocks(int64_t rows) {
  return (unsigned)(rows < 65535 * 16 ? rows : 65535 * 16);
}

/* y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps), with the CPU's f32 formula. */
__global__ void rmsnorm_kernel(int64_t rows, int64_t d, const float *x, const float *w, float eps,
                               float *y, float *rstd) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *xr = x + r * d;
    float *yr = y + r * d;
    float ss = 0.0f;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) ss += xr[j] * xr[j];
    ss = hy_block_sum(ss);
    float s = 1.0f / sqrtf(ss / (float)d + eps);
    if (threadIdx.x == 0) rstd[r] = s;
    if (w)
      for (int64_t j = threadIdx.x; j < d; j += blockDim.x) yr[j] = xr[j] * s * w[j];
    else
      for (int64_t j = threadIdx.x; j < d; j += blockDim.x) yr[j] = xr[j] * s;
  }
}

extern "C" void cuda_rmsnorm_f32(int64_t rows, int64_t d, const float *x, const float *w,
                                 double eps, float *y, float *rstd) {
  if (rows == 0 || d == 0) return;
  rmsnorm_kernel<<<row_blocks(rows), row_threads(d)>>>(rows, d, x, w, (float)eps, y, rstd);
  HY_CUDA_LAUNCHED(rmsnorm_kernel);
}

/* gx += rstd * (g - xh * mean(g * xh)) with xh = x * rstd and g = gy * w (1 without a weight). */
__global__ void rmsnorm_backward_x_kernel(int64_t rows, int64_t d, const float *x, const float *w,
                                          const float *rstd, const float *gy, float *gx) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *xr = x + r * d, *gr = gy + r * d;
    float *gxr = gx + r * d;
    float s = rstd[r], dot = 0.0f;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
      dot += gr[j] * (w ? w[j] : 1.0f) * xr[j] * s;
    dot = hy_block_sum(dot) / (float)d;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
      gxr[j] += s * (gr[j] * (w ? w[j] : 1.0f) - xr[j] * s * dot);
  }
}

/* The weight gradient's partial sums: block (bx, by) covers GW_COLS columns and the rows of chunk
 * by; its GW_COLS x GW_ROWS threads read GW_COLS consecutive floats of a row at a time, each
 * column's GW_ROWS threads take every GW_ROWS-th row, and their sums add up in a fixed order
 * into partial[by, column]. */
enum { GW_COLS = 32, GW_ROWS = 8, GW_ROWS_PER_CHUNK = 64, GW_MAX_CHUNKS = 1024 };

__global__ void rmsnorm_backward_w_partial_kernel(int64_t rows, int64_t d, int64_t chunk,
                                                  const float *x, const float *rstd,
                                                  const float *gy, float *partial) {
  __shared__ float part[GW_ROWS][GW_COLS + 1];
  int64_t j = (int64_t)blockIdx.x * GW_COLS + threadIdx.x;
  int64_t r0 = (int64_t)blockIdx.y * chunk, r1 = r0 + chunk < rows ? r0 + chunk : rows;
  float acc = 0.0f;
  if (j < d)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += GW_ROWS)
      acc += gy[r * d + j] * x[r * d + j] * rstd[r];
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && j < d) {
    float sum = 0.0f;
    for (int k = 0; k < GW_ROWS; k++) sum += part[k][threadIdx.x];
    partial[(int64_t)blockIdx.y * d + j] = sum;
  }
}

/* gw[j] += the chunks' partial sums of column j, in chunk order. */
__global__ void rmsnorm_backward_w_sum_kernel(int64_t d, int64_t n_chunks, const float *partial,
                                              float *gw) {
  HY_GRID_STRIDE(j, d) {
    float sum = 0.0f;
    for (int64_t c = 0; c < n_chunks; c++) sum += partial[c * d + j];
    gw[j] += sum;
  }
}

extern "C" void cuda_rmsnorm_backward_f32(int64_t rows, int64_t d, const float *x, const float *w,
                                          const float *rstd, const float *gy, float *gx,
                                          float *gw) {
  if (rows == 0 || d == 0) return;
  if (gx) {
    rmsnorm_backward_x_kernel<<<row_blocks(rows), row_threads(d)>>>(rows, d, x, w, rstd, gy, gx);
    HY_CUDA_LAUNCHED(rmsnorm_backward_x_kernel);
  }
  if (gw) {
    int64_t n_chunks = (rows + GW_ROWS_PER_CHUNK - 1) / GW_ROWS_PER_CHUNK;
    if (n_chunks > GW_MAX_CHUNKS) n_chunks = GW_MAX_CHUNKS;
    int64_t chunk = (rows + n_chunks - 1) / n_chunks;
    n_chunks = (rows + chunk - 1) / chunk; /* no empty chunk at the end */
    float *partial = (float *)hy_arena_alloc_on(HY_CUDA, (size_t)(n_chunks * d) * sizeof(float));
    dim3 grid((unsigned)((d + GW_COLS - 1) / GW_COLS), (unsigned)n_chunks);
    rmsnorm_backward_w_partial_kernel<<<grid, dim3(GW_COLS, GW_ROWS)>>>(rows, d, chunk, x, rstd, gy,
                                                                        partial);
    HY_CUDA_LAUNCHED(rmsnorm_backward_w_partial_kernel);
    rmsnorm_backward_w_sum_kernel<<<hy_cuda_blocks(d), HY_CUDA_THREADS>>>(d, n_chunks, partial, gw);
    HY_CUDA_LAUNCHED(rmsnorm_backward_w_sum_kernel);
  }
}
