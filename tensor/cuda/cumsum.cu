#include "tensor/cuda/common.cuh"

/* Inclusive prefix sums of x viewed as [outer, n, inner] along n, as cpu_cumsum: y_j (+)= sum of
 * x_i for i <= j, or for i >= j when reversed. Every sum is formed in a fixed order. */

namespace {

/* inner == 1: one block per row, which it walks in chunks of blockDim.x elements (in scan order,
 * coalesced either way): a warp scan with shuffles, the warps' totals scanned by the first warp,
 * and a carry from chunk to chunk. */
__global__ void scan_rows(int64_t rows, int64_t n, bool reverse, bool accumulate,
                          const float *__restrict__ x, float *__restrict__ y) {
  __shared__ float warps[32];
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *xr = x + r * n;
    float *yr = y + r * n;
    float carry = 0;
    for (int64_t start = 0; start < n; start += blockDim.x) {
      int64_t s = start + threadIdx.x, j = reverse ? n - 1 - s : s;
      float v = s < n ? xr[j] : 0.0f;
      for (int o = 1; o < 32; o <<= 1) {
        float t = __shfl_up_sync(0xffffffffu, v, o);
        if (lane >= o) v += t;
      }
      if (lane == 31) warps[warp] = v;
      __syncthreads();
      if (warp == 0) {
        float w = lane < n_warps ? warps[lane] : 0.0f;
        for (int o = 1; o < 32; o <<= 1) {
          float t = __shfl_up_sync(0xffffffffu, w, o);
          if (lane >= o) w += t;
        }
        warps[lane] = w; /* inclusive: warps[k] sums warps 0..k */
      }
      __syncthreads();
      float before = warp > 0 ? warps[warp - 1] : 0.0f;
      float total = warps[n_warps - 1];
      if (s < n) {
        float out = carry + (before + v);
        yr[j] = accumulate ? yr[j] + out : out;
      }
      carry += total;
      __syncthreads(); /* warps[] is rewritten by the next chunk */
    }
  }
}

/* inner > 1: a block takes 32 consecutive columns of one outer index (threadIdx.x, coalesced),
 * and splits n into blockDim.y contiguous segments (threadIdx.y). Each thread sums its segment,
 * the segments' totals give each its offset (summed in order), and a second pass writes the
 * prefix sums from that offset. */
enum { COLS_X = 32, COLS_Y = 32 };

__global__ void scan_cols(int64_t outer, int64_t n, int64_t inner, bool reverse, bool accumulate,
                          const float *__restrict__ x, float *__restrict__ y) {
  __shared__ float part[COLS_Y][COLS_X + 1];
  int64_t tiles = (inner + COLS_X - 1) / COLS_X;
  int64_t seg = (n + blockDim.y - 1) / blockDim.y;
  int64_t s0 = threadIdx.y * seg, s1 = s0 + seg < n ? s0 + seg : n;
  for (int64_t b = blockIdx.x; b < outer * tiles; b += gridDim.x) {
    int64_t o = b / tiles, c = (b % tiles) * COLS_X + threadIdx.x;
    const float *xo = x + o * n * inner + c;
    float *yo = y + o * n * inner + c;
    float sum = 0;
    if (c < inner)
      for (int64_t s = s0; s < s1; s++) sum += xo[(reverse ? n - 1 - s : s) * inner];
    part[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (c < inner) {
      float run = 0;
      for (unsigned t = 0; t < threadIdx.y; t++) run += part[t][threadIdx.x];
      for (int64_t s = s0; s < s1; s++) {
        int64_t j = (reverse ? n - 1 - s : s) * inner;
        run += xo[j];
        yo[j] = accumulate ? yo[j] + run : run;
      }
    }
    __syncthreads();
  }
}

static unsigned grid_of(int64_t blocks) {
  return (unsigned)(blocks < 65535 * 8 ? blocks : 65535 * 8);
}

} // namespace

extern "C" void cuda_cumsum_f32(int64_t outer, int64_t n, int64_t inner, bool reverse,
                                bool accumulate, const float *x, float *y) {
  if (outer * n * inner == 0) return;
  if (inner == 1) {
    unsigned threads = n >= 1024 ? 512 : n >= 128 ? 128 : 32;
    scan_rows<<<grid_of(outer), threads, 0, hy_cuda_stream()>>>(outer, n, reverse, accumulate, x,
                                                                y);
    HY_CUDA_LAUNCHED(scan_rows);
  } else {
    /* Segments of at least 16 elements, at most COLS_Y of them. */
    int64_t ys = (n + 15) / 16;
    if (ys > COLS_Y) ys = COLS_Y;
    int64_t tiles = (inner + COLS_X - 1) / COLS_X;
    scan_cols<<<grid_of(outer * tiles), dim3(COLS_X, (unsigned)ys), 0, hy_cuda_stream()>>>(
        outer, n, inner, reverse, accumulate, x, y);
    HY_CUDA_LAUNCHED(scan_cols);
  }
}
