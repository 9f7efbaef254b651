/* What the softmax attention kernels of attention.cu (f32) and attention_bf16.cu (bf16 on the
 * tensor cores) both need to know of one call: its sizes, strides and scale (attn_shape, filled
 * from the op's hy_attn_dims by attn_shape_of), the window rule t - window < s <= t by which query
 * t sees key s, and the backward's first pass (delta). */
#ifndef HYLA_CUDA_ATTENTION_SHAPE_CUH
#define HYLA_CUDA_ATTENTION_SHAPE_CUH

#include "tensor/cuda/bf16.cuh"
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

/* delta[b, h, t] = go[b, t, h, :] . o[b, t, h, :], summed in f32 (o and go contiguous
 * [B, T, H, D] of f32 or bf16): one warp per row, four elements a lane where vec (D % 4 == 0, both
 * aligned for ld4). */
template <typename S>
__global__ void attention_delta(int64_t rows, int T, int H, int D, bool vec, const S *o,
                                const S *go, float *delta) {
  int ln = (int)threadIdx.x % 32;
  int64_t w = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32,
          nw = (int64_t)gridDim.x * blockDim.x / 32;
  for (int64_t r = w; r < rows; r += nw) {
    const S *x = o + r * D, *g = go + r * D;
    float s = 0.f;
    if (vec) {
      for (int d = 4 * ln; d < D; d += 128) {
        float4 a = ld4(x + d), b = ld4(g + d);
        s = fmaf(a.x, b.x, fmaf(a.y, b.y, fmaf(a.z, b.z, fmaf(a.w, b.w, s))));
      }
    } else {
      for (int d = ln; d < D; d += 32) s = fmaf(ld(x + d), ld(g + d), s);
    }
#pragma unroll
    for (int m = 16; m >= 1; m /= 2) s += __shfl_xor_sync(0xffffffffu, s, m);
    if (ln == 0) {
      int64_t bt = r / H, b = bt / T, t = bt % T, h = r % H;
      delta[(b * H + h) * T + t] = s;
    }
  }
}

/* delta [B, H, T] in the step arena (the caller rewinds once the kernels reading it are queued). */
template <typename S> float *attention_deltas(const hy_attn_dims *d, const S *o, const S *go) {
  int64_t rows = d->B * d->T * d->H;
  float *delta = (float *)hy_arena_alloc_on(HY_CUDA, sizeof(float) * (size_t)rows);
  bool vec = d->D % 4 == 0 && hy_aligned4<S>(o) && hy_aligned4<S>(go);
  attention_delta<<<hy_cuda_blocks(rows * 32), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(
      rows, (int)d->T, (int)d->H, (int)d->D, vec, o, go, delta);
  HY_CUDA_LAUNCHED(attention_delta);
  return delta;
}

} // namespace

#endif
