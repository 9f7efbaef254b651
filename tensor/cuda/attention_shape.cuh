/* What the softmax attention kernels of attention.cu (f32) and attention_bf16.cu (tensor cores)
 * both need to know of one call: its sizes, strides and scale (attn_shape, filled from the op's
 * hy_attn_dims by attn_shape_of), and the window rule t - window < s <= t by which query t sees
 * key s. */
#ifndef HYLA_CUDA_ATTENTION_SHAPE_CUH
#define HYLA_CUDA_ATTENTION_SHAPE_CUH

#include "tensor/cuda/common.cuh"

namespace {

constexpr float LOG2E = 1.44269504088896340736f;
constexpr float LN2 = 0.69314718055994530942f;

struct attn_shape {
  int T, Tk, H, D, q_offset, window;
  int64_t qs[3], ks[3], vs[3]; /* strides over b, t, h */
  float scale, scale2;         /* scale, scale * log2(e): scores in base 2 */
};

/* The kernels index positions and (b, h) pairs with int. */
attn_shape attn_shape_of(const hy_attn_dims *d) {
  if (d->Tk > INT32_MAX || d->B * d->H > INT32_MAX)
    hy_die("attention", "sizes B %lld, H %lld, Tk %lld too large for the GPU kernels",
           (long long)d->B, (long long)d->H, (long long)d->Tk);
  attn_shape a;
  a.T = (int)d->T;
  a.Tk = (int)d->Tk;
  a.H = (int)d->H;
  a.D = (int)d->D;
  a.q_offset = (int)d->q_offset;
  a.window = d->window > d->Tk ? 0 : (int)d->window; /* a window past every key: none */
  for (int i = 0; i < 3; i++) {
    a.qs[i] = d->q_stride[i];
    a.ks[i] = d->k_stride[i];
    a.vs[i] = d->v_stride[i];
  }
  a.scale = (float)d->scale;
  a.scale2 = (float)(d->scale * 1.4426950408889634);
  return a;
}

/* Tiles of `rows` over n (queries or keys), as the grid's y (at most 65535). */
unsigned tiles(int64_t n, int rows) {
  int64_t t = (n + rows - 1) / rows;
  if (t > 65535)
    hy_die("attention", "%lld rows in tiles of %d: more than 65535 tiles", (long long)n, rows);
  return (unsigned)t;
}

/* Query gi does not see key j. */
__device__ __forceinline__ bool hidden(const attn_shape &a, int gi, int j) {
  return j > gi || (a.window > 0 && gi - j >= a.window);
}

/* The first key any query from position gi0 on sees, rounded down to a tile of BC. */
template <int BC> __device__ __forceinline__ int first_key_tile(const attn_shape &a, int gi0) {
  return a.window > 0 && gi0 - a.window + 1 > 0 ? (gi0 - a.window + 1) / BC * BC : 0;
}

} // namespace

#endif
