#include "tensor/cuda/common.cuh"

extern "C" {
#include "tensor/arena.h"
}

/* RMSNorm over rows of d: a block per row (grid-stride over the rows) with as many threads as
 * the row needs, rounded up to a warp, at most HY_CUDA_THREADS; threads stride along the row so
 * that each warp reads consecutive floats. Short rows (the per-head norms, d = 64) take a warp
 * each instead, HY_CUDA_THREADS / 32 rows a block: a block of two warps per row would leave the
 * SMs short of warps. The weight gradient is a sum over rows: per-block partial sums over chunks
 * of rows, then one pass that adds the chunks in order. No atomics: the same inputs give the same
 * bits. */

enum { WARP_ROWS_MAX_D = 128, WARP_ROWS_PER_BLOCK = HY_CUDA_THREADS / 32 };

static bool warp_rows(int64_t d) { return d <= WARP_ROWS_MAX_D; }

static unsigned row_threads(int64_t d) {
  if (warp_rows(d)) return HY_CUDA_THREADS;
  int64_t t = (d + 31) / 32 * 32;
  return (unsigned)(t < HY_CUDA_THREADS ? t : (int64_t)HY_CUDA_THREADS);
}

static unsigned row_blocks(int64_t rows, int64_t d) {
  if (warp_rows(d)) rows = (rows + WARP_ROWS_PER_BLOCK - 1) / WARP_ROWS_PER_BLOCK;
  return (unsigned)(rows < 65535 * 16 ? rows : 65535 * 16);
}

/* Who works on which row: a warp (WARP) or the whole block. */
template <bool WARP> struct row_team {
  int64_t first, stride; /* rows */
  int lane, lanes;       /* along the row */
  __device__ row_team() {
    if (WARP) {
      first = (int64_t)blockIdx.x * WARP_ROWS_PER_BLOCK + threadIdx.x / 32;
      stride = (int64_t)gridDim.x * WARP_ROWS_PER_BLOCK;
      lane = (int)threadIdx.x % 32, lanes = 32;
    } else {
      first = blockIdx.x, stride = gridDim.x;
      lane = (int)threadIdx.x, lanes = (int)blockDim.x;
    }
  }
  /* The team's sum of v, handed to all its threads. */
  __device__ float sum(float v) const {
    return WARP ? __shfl_sync(0xffffffffu, hy_warp_sum(v), 0) : hy_block_sum(v);
  }
};

/* y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps), with the CPU's f32 formula. */
template <bool WARP>
__global__ void rmsnorm_kernel(int64_t rows, int64_t d, const float *x, const float *w, float eps,
                               float *y, float *rstd) {
  const row_team<WARP> team;
  for (int64_t r = team.first; r < rows; r += team.stride) {
    const float *xr = x + r * d;
    float *yr = y + r * d;
    float ss = 0.0f;
    for (int64_t j = team.lane; j < d; j += team.lanes) ss += xr[j] * xr[j];
    ss = team.sum(ss);
    float s = 1.0f / sqrtf(ss / (float)d + eps);
    if (team.lane == 0) rstd[r] = s;
    if (w)
      for (int64_t j = team.lane; j < d; j += team.lanes) yr[j] = xr[j] * s * w[j];
    else
      for (int64_t j = team.lane; j < d; j += team.lanes) yr[j] = xr[j] * s;
  }
}

extern "C" void cuda_rmsnorm_f32(int64_t rows, int64_t d, const float *x, const float *w,
                                 double eps, float *y, float *rstd) {
  if (rows == 0 || d == 0) return;
  if (warp_rows(d))
    rmsnorm_kernel<true><<<row_blocks(rows, d), row_threads(d), 0, hy_cuda_stream()>>>(
        rows, d, x, w, (float)eps, y, rstd);
  else
    rmsnorm_kernel<false><<<row_blocks(rows, d), row_threads(d), 0, hy_cuda_stream()>>>(
        rows, d, x, w, (float)eps, y, rstd);
  HY_CUDA_LAUNCHED(rmsnorm_kernel);
}

/* gx += rstd * (g - xh * mean(g * xh)) with xh = x * rstd and g = gy * w (1 without a weight). */
template <bool WARP>
__global__ void rmsnorm_backward_x_kernel(int64_t rows, int64_t d, const float *x, const float *w,
                                          const float *rstd, const float *gy, float *gx) {
  const row_team<WARP> team;
  for (int64_t r = team.first; r < rows; r += team.stride) {
    const float *xr = x + r * d, *gr = gy + r * d;
    float *gxr = gx + r * d;
    float s = rstd[r], dot = 0.0f;
    for (int64_t j = team.lane; j < d; j += team.lanes)
      dot += gr[j] * (w ? w[j] : 1.0f) * xr[j] * s;
    dot = team.sum(dot) / (float)d;
    for (int64_t j = team.lane; j < d; j += team.lanes)
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

/* gw[j] += the chunks' partial sums of column j: a block per column, its threads over the chunks,
 * summed in a fixed order (one thread walking a thousand chunks of a short row was the slowest
 * part of the per-head norms' backward). */
__global__ void rmsnorm_backward_w_sum_kernel(int64_t d, int64_t n_chunks, const float *partial,
                                              float *gw) {
  for (int64_t j = blockIdx.x; j < d; j += gridDim.x) {
    float sum = 0.0f;
    for (int64_t c = threadIdx.x; c < n_chunks; c += blockDim.x) sum += partial[c * d + j];
    sum = hy_block_sum(sum);
    if (threadIdx.x == 0) gw[j] += sum;
  }
}

extern "C" void cuda_rmsnorm_backward_f32(int64_t rows, int64_t d, const float *x, const float *w,
                                          const float *rstd, const float *gy, float *gx,
                                          float *gw) {
  if (rows == 0 || d == 0) return;
  if (gx) {
    if (warp_rows(d))
      rmsnorm_backward_x_kernel<true><<<row_blocks(rows, d), row_threads(d), 0, hy_cuda_stream()>>>(
          rows, d, x, w, rstd, gy, gx);
    else
      rmsnorm_backward_x_kernel<false>
          <<<row_blocks(rows, d), row_threads(d), 0, hy_cuda_stream()>>>(rows, d, x, w, rstd, gy,
                                                                         gx);
    HY_CUDA_LAUNCHED(rmsnorm_backward_x_kernel);
  }
  if (gw) {
    int64_t n_chunks = (rows + GW_ROWS_PER_CHUNK - 1) / GW_ROWS_PER_CHUNK;
    if (n_chunks > GW_MAX_CHUNKS) n_chunks = GW_MAX_CHUNKS;
    int64_t chunk = (rows + n_chunks - 1) / n_chunks;
    n_chunks = (rows + chunk - 1) / chunk; /* no empty chunk at the end */
    float *partial = (float *)hy_arena_alloc_on(HY_CUDA, (size_t)(n_chunks * d) * sizeof(float));
    dim3 grid((unsigned)((d + GW_COLS - 1) / GW_COLS), (unsigned)n_chunks);
    rmsnorm_backward_w_partial_kernel<<<grid, dim3(GW_COLS, GW_ROWS), 0, hy_cuda_stream()>>>(
        rows, d, chunk, x, rstd, gy, partial);
    HY_CUDA_LAUNCHED(rmsnorm_backward_w_partial_kernel);
    rmsnorm_backward_w_sum_kernel<<<(unsigned)(d < 65535 ? d : 65535), HY_CUDA_THREADS, 0,
                                    hy_cuda_stream()>>>(d, n_chunks, partial, gw);
    HY_CUDA_LAUNCHED(rmsnorm_backward_w_sum_kernel);
  }
}
