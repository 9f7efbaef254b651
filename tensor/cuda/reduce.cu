#include "tensor/cuda/common.cuh"

/* Sum, mean and max of x viewed as [outer, n, inner] over n, into y [outer, inner], as cpu_reduce.
 * Max keeps the first maximal element's index (argmax, when asked for); a NaN wins only as the
 * first element, as in the CPU's scan with `>`. Each output element is reduced by one block
 * (inner == 1: a row, contiguous) or one column of a block (inner > 1) in a fixed order. */

namespace {

/* (v2, i2) replaces the best so far (v1, i1)? An index < 0 is "nothing yet". */
__device__ __forceinline__ bool better(float v2, int32_t i2, float v1, int32_t i1) {
  if (i2 < 0) return false;
  if (i1 < 0) return true;
  bool nan1 = v1 != v1, nan2 = v2 != v2;
  if (nan1 && i1 == 0) return false;
  if (nan2 && i2 == 0) return true;
  if (nan2) return false;
  if (nan1) return true;
  return v2 > v1 || (v2 == v1 && i2 < i1);
}

__device__ __forceinline__ void warp_max(float *v, int32_t *i) {
  for (int o = 16; o > 0; o >>= 1) {
    float v2 = __shfl_down_sync(0xffffffffu, *v, o);
    int32_t i2 = __shfl_down_sync(0xffffffffu, *i, o);
    if (better(v2, i2, *v, *i)) {
      *v = v2;
      *i = i2;
    }
  }
}

/* inner == 1: one block per row; each thread scans a strided share, then warps, then the block. */
__global__ void reduce_rows(hy_reduce_op op, int64_t rows, int64_t n, const float *__restrict__ x,
                            float *__restrict__ y, int32_t *__restrict__ argmax) {
  __shared__ float wv[32];
  __shared__ int32_t wi[32];
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *xr = x + r * n;
    if (op == HY_REDUCE_MAX) {
      float v = 0;
      int32_t i = -1;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        if (better(xr[j], (int32_t)j, v, i)) {
          v = xr[j];
          i = (int32_t)j;
        }
      warp_max(&v, &i);
      if (lane == 0) {
        wv[warp] = v;
        wi[warp] = i;
      }
      __syncthreads();
      if (warp == 0) {
        v = lane < n_warps ? wv[lane] : 0.0f;
        i = lane < n_warps ? wi[lane] : -1;
        warp_max(&v, &i);
        if (lane == 0) {
          y[r] = v;
          if (argmax) argmax[r] = i;
        }
      }
    } else {
      float s = 0;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += xr[j];
      s = hy_warp_sum(s);
      if (lane == 0) wv[warp] = s;
      __syncthreads();
      if (warp == 0) {
        s = lane < n_warps ? wv[lane] : 0.0f;
        s = hy_warp_sum(s);
        if (lane == 0) y[r] = op == HY_REDUCE_MEAN ? s / (float)n : s;
      }
    }
    __syncthreads();
  }
}

/* inner > 1: a block takes 32 consecutive columns of one outer index (threadIdx.x, coalesced);
 * threadIdx.y scans every blockDim.y-th j, and the shares are combined in order of y. */
enum { COLS_X = 32, COLS_Y = 32 };

__global__ void reduce_cols(hy_reduce_op op, int64_t outer, int64_t n, int64_t inner,
                            const float *__restrict__ x, float *__restrict__ y,
                            int32_t *__restrict__ argmax) {
  __shared__ float pv[COLS_Y][COLS_X + 1];
  __shared__ int32_t pi[COLS_Y][COLS_X + 1];
  int64_t tiles = (inner + COLS_X - 1) / COLS_X;
  for (int64_t b = blockIdx.x; b < outer * tiles; b += gridDim.x) {
    int64_t o = b / tiles, c = (b % tiles) * COLS_X + threadIdx.x;
    const float *xo = x + o * n * inner + c;
    float v = 0;
    int32_t i = -1;
    if (c < inner) {
      if (op == HY_REDUCE_MAX) {
        for (int64_t j = threadIdx.y; j < n; j += blockDim.y)
          if (better(xo[j * inner], (int32_t)j, v, i)) {
            v = xo[j * inner];
            i = (int32_t)j;
          }
      } else {
        for (int64_t j = threadIdx.y; j < n; j += blockDim.y) v += xo[j * inner];
      }
    }
    pv[threadIdx.y][threadIdx.x] = v;
    pi[threadIdx.y][threadIdx.x] = i;
    __syncthreads();
    if (threadIdx.y == 0 && c < inner) {
      for (unsigned t = 1; t < blockDim.y; t++) {
        if (op != HY_REDUCE_MAX)
          v += pv[t][threadIdx.x];
        else if (better(pv[t][threadIdx.x], pi[t][threadIdx.x], v, i)) {
          v = pv[t][threadIdx.x];
          i = pi[t][threadIdx.x];
        }
      }
      int64_t out = o * inner + c;
      y[out] = op == HY_REDUCE_MEAN ? v / (float)n : v;
      if (op == HY_REDUCE_MAX && argmax) argmax[out] = i;
    }
    __syncthreads();
  }
}

static unsigned grid_of(int64_t blocks) {
  return (unsigned)(blocks < 65535 * 8 ? blocks : 65535 * 8);
}

/* gx[o, j, i] += w gy[o, i]: one thread per element of x. */
__global__ void spread(int64_t total, int64_t n, int64_t inner, float w,
                       const float *__restrict__ gy, float *__restrict__ gx) {
  HY_GRID_STRIDE(k, total) {
    int64_t i = k % inner, o = k / (n * inner);
    gx[k] += w * gy[o * inner + i];
  }
}

/* gx[o, argmax[o, i], i] += gy[o, i]: one thread per element of y, each writing its own. */
__global__ void to_argmax(int64_t total, int64_t n, int64_t inner,
                          const int32_t *__restrict__ argmax, const float *__restrict__ gy,
                          float *__restrict__ gx) {
  HY_GRID_STRIDE(k, total) {
    int64_t i = k % inner, o = k / inner;
    gx[(o * n + argmax[k]) * inner + i] += gy[k];
  }
}

} // namespace

extern "C" void cuda_reduce_f32(hy_reduce_op op, int64_t outer, int64_t n, int64_t inner,
                                const float *x, float *y, int32_t *argmax) {
  if (outer * inner == 0) return;
  if (inner == 1) {
    unsigned threads = n >= 4096 ? 512 : n >= 512 ? 256 : n >= 64 ? 64 : 32;
    reduce_rows<<<grid_of(outer), threads, 0, hy_cuda_stream()>>>(op, outer, n, x, y, argmax);
    HY_CUDA_LAUNCHED(reduce_rows);
  } else {
    int64_t ys = n >= (int64_t)COLS_Y * 8 ? (int64_t)COLS_Y : (n + 7) / 8;
    if (ys < 1) ys = 1;
    int64_t tiles = (inner + COLS_X - 1) / COLS_X;
    reduce_cols<<<grid_of(outer * tiles), dim3(COLS_X, (unsigned)ys), 0, hy_cuda_stream()>>>(
        op, outer, n, inner, x, y, argmax);
    HY_CUDA_LAUNCHED(reduce_cols);
  }
}

extern "C" void cuda_reduce_backward_f32(hy_reduce_op op, int64_t outer, int64_t n, int64_t inner,
                                         const int32_t *argmax, const float *gy, float *gx) {
  if (op == HY_REDUCE_MAX) {
    int64_t total = outer * inner;
    if (total == 0) return;
    to_argmax<<<hy_cuda_blocks(total), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(total, n, inner,
                                                                               argmax, gy, gx);
    HY_CUDA_LAUNCHED(to_argmax);
  } else {
    int64_t total = outer * n * inner;
    if (total == 0) return;
    float w = op == HY_REDUCE_MEAN ? 1 / (float)n : 1.0f;
    spread<<<hy_cuda_blocks(total), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(total, n, inner, w, gy,
                                                                            gx);
    HY_CUDA_LAUNCHED(spread);
  }
}
