#include "tensor/cuda/bf16.cuh"
#include "tensor/cuda/common.cuh"

#include <math.h>

/* Rotate-half RoPE on x [B, T, H, D] into y packed, as cpu_rope: channel i < D/2 pairs with
 * i + D/2 and both turn by the angle (t + pos_offset) * theta^(-2i/D), computed in double;
 * `inverse` turns the other way. x's rows sit at strides (sb, st, sh) over b, t and h, its
 * channels contiguous (q and k sliced from one projection are read in place). One template over
 * the storage type T (f32 or bf16: values turn in f32 and round once on store). Thread (x, y) of
 * a block takes channel i = blockIdx.y * blockDim.x + x of the rows (b, t) = blockIdx.x *
 * blockDim.y + y (grid-stride), computes that angle once per (b, t) and turns the pair in every
 * head: a warp reads and writes consecutive channels. */
struct rope_strides {
  int64_t b, t, h;
};

template <typename T>
__global__ void rope_kernel(int64_t BT, int64_t T_len, int64_t H, int64_t D, int64_t pos_offset,
                            double theta, bool inverse, bool accumulate, rope_strides xs,
                            const T *x, T *y) {
  int64_t half = D / 2, i = (int64_t)blockIdx.y * blockDim.x + threadIdx.x;
  if (i >= half) return;
  double freq = pow(theta, -2.0 * (double)i / (double)D);
  for (int64_t bt = (int64_t)blockIdx.x * blockDim.y + threadIdx.y; bt < BT;
       bt += (int64_t)gridDim.x * blockDim.y) {
    int64_t b = bt / T_len, t = bt - b * T_len;
    double angle = (double)(t + pos_offset) * freq, sn, cs;
    sincos(angle, &sn, &cs);
    float c = (float)cs, s = (float)(inverse ? -sn : sn);
    const T *xr = x + b * xs.b + t * xs.t;
    T *yr = y + bt * H * D;
    for (int64_t h = 0; h < H; h++, xr += xs.h, yr += D) {
      float x1 = ld(xr + i), x2 = ld(xr + i + half);
      float y1 = x1 * c - x2 * s, y2 = x2 * c + x1 * s;
      if (accumulate) {
        y1 += ld(yr + i);
        y2 += ld(yr + i + half);
      }
      st(yr + i, y1);
      st(yr + i + half, y2);
    }
  }
}

template <typename T>
static void rope(int64_t B, int64_t T_len, int64_t H, int64_t D, int64_t pos_offset, double theta,
                 bool inverse, bool accumulate, const int64_t *xs, const T *x, T *y) {
  int64_t half = D / 2, BT = B * T_len;
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
  rope_kernel<<<grid, block, 0, hy_cuda_stream()>>>(BT, T_len, H, D, pos_offset, theta, inverse,
                                                    accumulate, rope_strides{xs[0], xs[1], xs[2]},
                                                    x, y);
  HY_CUDA_LAUNCHED(rope_kernel);
}

extern "C" void cuda_rope_f32(int64_t B, int64_t T, int64_t H, int64_t D, int64_t pos_offset,
                              double theta, bool inverse, bool accumulate, const int64_t *xs,
                              const float *x, float *y) {
  rope(B, T, H, D, pos_offset, theta, inverse, accumulate, xs, x, y);
}

extern "C" void cuda_rope_bf16(int64_t B, int64_t T, int64_t H, int64_t D, int64_t pos_offset,
                               double theta, bool inverse, bool accumulate, const int64_t *xs,
                               const hy_bf16 *x, hy_bf16 *y) {
  rope(B, T, H, D, pos_offset, theta, inverse, accumulate, xs, reinterpret_cast<const bf16 *>(x),
       reinterpret_cast<bf16 *>(y));
}
