#include "tensor/cuda/common.cuh"

#include <math.h>

/* Rotate-half RoPE on x [B, T, H, D], as cpu_rope: channel i < D/2 pairs with i + D/2 and both
 * turn by the angle (t + pos_offset) * theta^(-2i/D), computed in double; `inverse` turns the
 * other way. Thread (x, y) of a block takes channel i = blockIdx.y * blockDim.x + x of the rows
 * (b, t) = blockIdx.x * blockDim.y + y (grid-stride), computes that angle once per (b, t) and
 * turns the pair in every head: a warp reads and writes consecutive channels. */
__global__ void rope_kernel(int64_t BT, int64_t T, int64_t H, int64_t D, int64_t pos_offset,
                            double theta, bool inverse, bool accumulate, const float *x, float *y) {
  int64_t half = D / 2, i = (int64_t)blockIdx.y * blockDim.x + threadIdx.x;
  if (i >= half) return;
  double freq = pow(theta, -2.0 * (double)i / (double)D);
  for (int64_t bt = (int64_t)blockIdx.x * blockDim.y + threadIdx.y; bt < BT;
       bt += (int64_t)gridDim.x * blockDim.y) {
    double angle = (double)(bt % T + pos_offset) * freq, sn, cs;
    sincos(angle, &sn, &cs);
    float c = (float)cs, s = (float)(inverse ? -sn : sn);
    for (int64_t h = 0; h < H; h++) {
      int64_t base = (bt * H + h) * D;
      float x1 = x[base + i], x2 = x[base + i + half];
      float y1 = x1 * c - x2 * s, y2 = x2 * c + x1 * s;
      if (accumulate) {
        y[base + i] += y1;
        y[base + i + half] += y2;
      } else {
        y[base + i] = y1;
        y[base + i + half] = y2;
      }
    }
  }
}

extern "C" void cuda_rope_f32(int64_t B, int64_t T, int64_t H, int64_t D, int64_t pos_offset,
                              double theta, bool inverse, bool accumulate, const float *x,
                              float *y) {
  int64_t half = D / 2, BT = B * T;
  if (BT == 0 || H == 0 || half == 0) return;
  /* Channels across a warp (or several), rows (b, t) fill the rest of the block. */
  int64_t tx = (half + 31) / 32 * 32;
  if (tx > HY_CUDA_THREADS) tx = HY_CUDA_THREADS;
  int64_t ty = HY_CUDA_THREADS / tx;
  int64_t channel_blocks = (half + tx - 1) / tx, row_blocks = (BT + ty - 1) / ty;
  if (row_blocks > 65535 * 16) row_blocks = 65535 * 16;
  if (channel_blocks > 65535)
    hy_die("rope", "head dim %lld is too large for the CUDA kernel", (long long)D);
  dim3 grid((unsigned)row_blocks, (unsigned)channel_blocks), block((unsigned)tx, (unsigned)ty);
  rope_kernel<<<grid, block, 0, hy_cuda_stream()>>>(BT, T, H, D, pos_offset, theta, inverse,
                                                    accumulate, x, y);
  HY_CUDA_LAUNCHED(rope_kernel);
}
