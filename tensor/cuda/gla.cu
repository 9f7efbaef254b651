#include "tensor/cuda/bf16.cuh"
#include "tensor/cuda/common.cuh"
#include "tensor/cuda/limits.h"
extern "C" {
#include "tensor/arena.h"
}

#include <math.h>

/* Chunked gated linear attention on the GPU: the twin of tensor/cpu/gla.c, with its layouts
 * (q, k, g [B, T, H, dk], v, o [B, T, H, dv], states [B, H, n_chunks, dk, dv]: the state before
 * each chunk) and its arithmetic, over f32 or bf16 storage of q, k, v, g, o and their gradients
 * (one template over the storage type T: values load to f32 and round once on store). The states,
 * their gradients, the decays, the pair matrices and every sum stay f32. The arithmetic: the
 * cumulative log decays b of a chunk are summed token by token in f32 as the CPU sums them, and
 * every exponent is a difference b_t - b_s with s <= t, or b itself, so that no factor exceeds 1.
 *
 * Forward, per (b, h): the decays b; each chunk's own contribution to the state,
 * (k * exp(B - b))^T v, written to the slot of the state after it; one sequential pass over the
 * chunks per state element turns the contributions into the states S (S <- diag(exp(B)) S + U);
 * the intra-chunk scores A_ts (s <= t) into a scratch; and per chunk and tile of 64 rows the
 * outputs o = (q * exp(b)) S + A V. Backward: A again and dP = dO V^T (times the decay mask when
 * the decay is a constant per head); the chunks' contributions (q * exp(b))^T dO to the state
 * gradient and the reverse pass that makes dS, the gradient of the state after each chunk; then
 * dv = (k * exp(B - b)) dS + A^T dO, dq = exp(b) * (dO S^T) + pairs and
 * dk = exp(B - b) * (V dS^T) + pairs, one kernel each. Every output element has one owner: no
 * atomics, and each sum runs in a fixed order.
 *
 * With a gate per channel the pair sums of dq and dk carry exp(b_ti - b_si) per channel. A thread
 * owns rows r0..r0+3 of one such output; it splits each factor at a reference token m of its rows
 * (r0 for dq, the last row for dk) as exp(b_t - b_m) exp(b_m - b_s), both at most 1, so that the
 * exponentials of the sum over s (or t) are 4 per step rather than 16; the few pairs on the other
 * side of m are computed directly.
 *
 * The scores A themselves sum over channels, one exponential per channel and pair.
 *
 * Tiles: 256 threads own a 64 x 64 output tile, 4 x 4 each (thread (ty, tx): rows 4 ty.., columns
 * 4 tx..), and step through the contraction 16 deep with both operands staged in shared memory,
 * k-major ([16][64]), read back as float4; each step's global loads are issued during the step
 * before.
 *
 * The op's own dq and dk, from which the gate's gradient is summed, are f32 where there is a gate
 * (the two products it subtracts nearly cancel under strong decays, so they must not be rounded
 * to bf16 first); the other gradients are in T. A gradient flagged in hy_gla_dims' overwrite is
 * written over, the others are added to. */

namespace {

constexpr int TILE = HY_CUDA_GLA_TILE, KS = 16, LDS = TILE + 4, THREADS = 256;
constexpr int MAX_HEADS = HY_CUDA_DECAY_HEADS_MAX; /* constant decays travel as a kernel argument */
constexpr int SEG = 64; /* tokens per segment of the gate gradient's reverse sums */
constexpr float LOG2E = 1.44269504088896340736f;

/* exp(x) for x <= 0 at 2 ulp plus |x| 6e-8 relative (the rounding of x log2 e): terms with large
 * |x| are below f32's resolution of the sums they enter. */
__device__ __forceinline__ float ex(float x) { return exp2f(x * LOG2E); }

struct gla_shape {
  int B, T, H, dk, dv, C, nc;
  int ldp;           /* row length of the C x C pair matrices (C rounded up to 4) */
  int64_t per_state; /* dk dv */
  bool vk, vv;       /* dk (dv) % 4 == 0: rows may be read as float4 */
};

struct head_decays {
  float g[MAX_HEADS];
};

/* The row of token t of head bh (= b H + h) in a [B, T, H, *] tensor. */
__device__ __forceinline__ int64_t row_of(const gla_shape &s, int bh, int t) {
  return ((int64_t)(bh / s.H) * s.T + t) * s.H + bh % s.H;
}

__device__ __forceinline__ int imin(int a, int b) { return a < b ? a : b; }
__device__ __forceinline__ int imax(int a, int b) { return a > b ? a : b; }

/* The cumulative log decays b(j, i) of one chunk (j its token, i the channel): rows of a
 * [B, T, H, dk] array with a gate per channel, or a per-head table [H, C] shared by all channels
 * (ci = 0) with a constant decay. */
struct decays {
  const float *p;
  int64_t ld;
  int ci;
  __device__ __forceinline__ float at(int j, int i) const { return p[j * ld + (int64_t)i * ci]; }
};

__device__ __forceinline__ decays decays_of(const gla_shape &s, const float *bc, bool gated, int bh,
                                            int c) {
  if (gated) return {bc + row_of(s, bh, c * s.C) * s.dk, (int64_t)s.H * s.dk, 1};
  return {bc + (int64_t)(bh % s.H) * s.C, 1, 0};
}

__device__ __forceinline__ int chunk_len(const gla_shape &s, int c) {
  return imin(s.C, s.T - c * s.C);
}

__device__ __forceinline__ float4 zero4() {
  float4 z;
  z.x = z.y = z.z = z.w = 0.f;
  return z;
}

/* 4 values of a row (f32 or bf16) from column col on as floats, zeros from column ncol. vec: one
 * ld4 where the 4 are there (col a multiple of 4, the row aligned for it). */
template <typename S>
__device__ __forceinline__ float4 load4(const S *row, int col, int ncol, bool vec) {
  if (vec && col + 3 < ncol) return ld4(row + col);
  float4 r;
  r.x = col < ncol ? ld(row + col) : 0.f;
  r.y = col + 1 < ncol ? ld(row + col + 1) : 0.f;
  r.z = col + 2 < ncol ? ld(row + col + 2) : 0.f;
  r.w = col + 3 < ncol ? ld(row + col + 3) : 0.f;
  return r;
}

/* row[col..col + 3] (+)= v, up to column ncol, summed in f32 and rounded once. */
template <typename S>
__device__ __forceinline__ void store4(S *row, int col, int ncol, bool vec, const float *v,
                                       bool accumulate) {
  if (vec && col + 3 < ncol) {
    float4 x = accumulate ? ld4(row + col) : zero4();
    x.x += v[0];
    x.y += v[1];
    x.z += v[2];
    x.w += v[3];
    st4(row + col, x);
    return;
  }
  for (int e = 0; e < 4; e++)
    if (col + e < ncol) st(row + col + e, accumulate ? ld(row + col + e) + v[e] : v[e]);
}

/* b(j, i..i+3), zeros from channel ncol. */
__device__ __forceinline__ float4 decay4(const decays &d, int j, int i, int ncol, bool vec) {
  if (d.ci) return load4(d.p + j * d.ld, i, ncol, vec);
  float b = d.p[j * d.ld];
  float4 r;
  r.x = i < ncol ? b : 0.f;
  r.y = i + 1 < ncol ? b : 0.f;
  r.z = i + 2 < ncol ? b : 0.f;
  r.w = i + 3 < ncol ? b : 0.f;
  return r;
}

__device__ __forceinline__ void unpack(float (&x)[4], const float4 &v) {
  x[0] = v.x;
  x[1] = v.y;
  x[2] = v.z;
  x[3] = v.w;
}

/* How a staged operand is scaled on its way into shared memory: v, v exp(b) or v exp(b_l - b),
 * with b the decays of its row (token) and b_l those of the chunk's last token. */
enum scaling { PLAIN, EXP_B, EXP_BL_MINUS_B };

/* One thread's share of a staged step: 4 floats of one row and their decays, fetched from global
 * memory a step ahead (the loads overlap the current step's products) and scaled when put. */
struct part {
  float4 v, b, bl;
};

/* A [KS][TILE] step of an operand from the rows of src (ld floats apart), zero from row nrow and
 * column ncol. ROWS: dst[kk][c] = src[row0 + kk][col0 + c]; else the transpose,
 * dst[kk][r] = src[row0 + r][col0 + kk]. d: the decays of src's rows, last: the chunk's last
 * token (for EXP_BL_MINUS_B). */
template <bool ROWS, int SC, typename S>
__device__ __forceinline__ part fetch(const S *src, int64_t ld, int row0, int nrow, int col0,
                                      int ncol, bool vec, const decays &d = decays(),
                                      int last = 0) {
  int r = ROWS ? (int)threadIdx.x / 16 : (int)threadIdx.x / 4;
  int c = ROWS ? (int)threadIdx.x % 16 * 4 : (int)threadIdx.x % 4 * 4;
  part p;
  p.v = p.b = p.bl = zero4();
  if (row0 + r < nrow) {
    p.v = load4(src + (row0 + r) * ld, col0 + c, ncol, vec);
    if (SC != PLAIN) p.b = decay4(d, row0 + r, col0 + c, ncol, vec);
    if (SC == EXP_BL_MINUS_B) p.bl = decay4(d, last, col0 + c, ncol, vec);
  }
  return p;
}

template <bool ROWS, int SC> __device__ __forceinline__ void put(float (*dst)[LDS], const part &p) {
  float v[4], b[4], bl[4];
  unpack(v, p.v);
  unpack(b, p.b);
  unpack(bl, p.bl);
  if (SC != PLAIN)
    for (int e = 0; e < 4; e++) v[e] *= ex(SC == EXP_B ? b[e] : bl[e] - b[e]);
  if (ROWS) {
    int kk = (int)threadIdx.x / 16, c = (int)threadIdx.x % 16 * 4;
    float4 x;
    x.x = v[0];
    x.y = v[1];
    x.z = v[2];
    x.w = v[3];
    *reinterpret_cast<float4 *>(&dst[kk][c]) = x;
  } else {
    int r = (int)threadIdx.x / 4, kk = (int)threadIdx.x % 4 * 4;
    for (int e = 0; e < 4; e++) dst[kk + e][r] = v[e];
  }
}

/* The thread's 4 rows (or columns) of step kk of a staged operand. */
__device__ __forceinline__ void take(float (&x)[4], const float (*src)[LDS], int kk, int at) {
  unpack(x, *reinterpret_cast<const float4 *>(&src[kk][at]));
}

/* acc[r][c] += A[kk][4 ty + r] B[kk][4 tx + c] over one staged step. */
__device__ __forceinline__ void mma_steps(float (&acc)[4][4], const float (*A)[LDS],
                                          const float (*B)[LDS], int steps, int ty, int tx) {
#pragma unroll 4
  for (int kk = 0; kk < steps; kk++) {
    float a[4], b[4];
    take(a, A, kk, ty * 4);
    take(b, B, kk, tx * 4);
#pragma unroll
    for (int r = 0; r < 4; r++)
#pragma unroll
      for (int c = 0; c < 4; c++) acc[r][c] = fmaf(a[r], b[c], acc[r][c]);
  }
}

/* b: the cumulative sums of g inside each chunk, token by token as on the CPU, in f32. One thread
 * per (batch, chunk, head, channel). */
template <typename T> __global__ void decay_cumsum(gla_shape s, const T *g, float *b) {
  int64_t n = (int64_t)s.B * s.nc * s.H * s.dk;
  HY_GRID_STRIDE(x, n) {
    int i = (int)(x % s.dk);
    int64_t r = x / s.dk;
    int h = (int)(r % s.H);
    r /= s.H;
    int c = (int)(r % s.nc), bb = (int)(r / s.nc);
    int len = chunk_len(s, c);
    int64_t step = (int64_t)s.H * s.dk, at = (((int64_t)bb * s.T + c * s.C) * s.H + h) * s.dk + i;
    float acc = 0.f;
    for (int j = 0; j < len; j++) {
      acc = acc + ld(g + at + j * step);
      b[at + j * step] = acc;
    }
  }
}

/* The constant decay's table [H, C]: b(j) = (j + 1) gamma_h, summed as on the CPU. */
__global__ void decay_table(gla_shape s, head_decays hd, float *b) {
  HY_GRID_STRIDE(h, (int64_t)s.H) {
    float acc = 0.f;
    for (int j = 0; j < s.C; j++) {
      acc = acc + hd.g[h];
      b[h * s.C + j] = acc;
    }
  }
}

/* One chunk's contribution to a state: forward, U = (k * exp(B - b))^T v into the slot of the
 * state after the chunk (chunks 0..nc-2); backward, (q * exp(b))^T dO into the slot of the state
 * gradient before it (chunks 1..nc-1). Block: (head, chunk), dk tile, dv tile. */
template <bool BACKWARD, bool GATED, typename T>
__global__ void __launch_bounds__(THREADS)
    chunk_state(gla_shape s, const T *x, const T *y, const float *bc, float *out) {
  __shared__ __align__(16) float xs[KS][LDS];
  __shared__ __align__(16) float ys[KS][LDS];
  int nc1 = s.nc - 1;
  int bh = (int)blockIdx.x / nc1, c = (int)blockIdx.x % nc1 + (BACKWARD ? 1 : 0);
  int slot = BACKWARD ? c - 1 : c + 1;
  int i0 = (int)blockIdx.y * TILE, j0 = (int)blockIdx.z * TILE;
  int n = chunk_len(s, c);
  decays d = decays_of(s, bc, GATED, bh, c);
  int64_t row0 = row_of(s, bh, c * s.C), ldk = (int64_t)s.H * s.dk, ldv = (int64_t)s.H * s.dv;
  const T *xc = x + row0 * s.dk, *yc = y + row0 * s.dv;
  int ty = (int)threadIdx.x / 16, tx = (int)threadIdx.x % 16;
  float acc[4][4] = {};
  constexpr int SC = BACKWARD ? EXP_B : EXP_BL_MINUS_B;
  part px = fetch<true, SC>(xc, ldk, 0, n, i0, s.dk, s.vk, d, n - 1);
  part py = fetch<true, PLAIN>(yc, ldv, 0, n, j0, s.dv, s.vv);
  for (int t0 = 0; t0 < n; t0 += KS) {
    put<true, SC>(xs, px);
    put<true, PLAIN>(ys, py);
    __syncthreads();
    if (t0 + KS < n) {
      px = fetch<true, SC>(xc, ldk, t0 + KS, n, i0, s.dk, s.vk, d, n - 1);
      py = fetch<true, PLAIN>(yc, ldv, t0 + KS, n, j0, s.dv, s.vv);
    }
    mma_steps(acc, xs, ys, KS, ty, tx);
    __syncthreads();
  }
  float *o = out + ((int64_t)bh * s.nc + slot) * s.per_state;
  for (int r = 0; r < 4; r++) {
    int i = i0 + ty * 4 + r;
    if (i < s.dk) store4(o + (int64_t)i * s.dv, j0 + tx * 4, s.dv, s.vv, acc[r], false);
  }
}

/* The sequential pass over the chunks, one thread per state element: forward, slot 0 = 0 and
 * S_c = diag(exp(B_{c-1})) S_{c-1} + U_{c-1} in place over the contributions; backward, the last
 * slot 0 and dS_c = diag(exp(B_{c+1})) dS_{c+1} + (contribution of chunk c + 1). */
template <bool BACKWARD, bool GATED>
__global__ void state_scan(gla_shape s, const float *bc, float *st) {
  int64_t per = s.per_state;
  HY_GRID_STRIDE(x, (int64_t)s.B * s.H * per) {
    int bh = (int)(x / per);
    int64_t e = x % per;
    int i = (int)(e / s.dv);
    float *p = st + (int64_t)bh * s.nc * per + e;
    float acc = 0.f;
    if (!BACKWARD) {
      p[0] = 0.f;
      for (int c = 1; c < s.nc; c++) {
        float decay = expf(decays_of(s, bc, GATED, bh, c - 1).at(s.C - 1, i));
        acc = fmaf(decay, acc, p[c * per]);
        p[c * per] = acc;
      }
    } else {
      p[(int64_t)(s.nc - 1) * per] = 0.f;
      for (int c = s.nc - 2; c >= 0; c--) {
        float decay = expf(decays_of(s, bc, GATED, bh, c + 1).at(chunk_len(s, c + 1) - 1, i));
        acc = fmaf(decay, acc, p[c * per]);
        p[c * per] = acc;
      }
    }
  }
}

/* The pairs of one chunk, P_ts for s <= t (zero above the diagonal), into a [C, ldp] matrix per
 * (head, chunk): A_ts = sum_i q_ti k_si exp(b_ti - b_si) (DP false; x = q, y = k), or
 * dP_ts = dO_t . v_s (DP; x = dO, y = v). With a constant decay both are multiplied by
 * exp(gamma (t - s)). Block: (head, chunk), a pair of 64-token tiles (rt, st <= rt). */
template <bool GATED, bool DP, typename T>
__global__ void __launch_bounds__(THREADS)
    pairs_kernel(gla_shape s, const T *x, const T *y, const float *bc, float *P) {
  constexpr bool EXPS = GATED && !DP;
  __shared__ __align__(16) float xs[KS][LDS];
  __shared__ __align__(16) float ys[KS][LDS];
  __shared__ __align__(16) float bxs[EXPS ? KS : 1][LDS];
  __shared__ __align__(16) float bys[EXPS ? KS : 1][LDS];
  int bh = (int)blockIdx.x / s.nc, c = (int)blockIdx.x % s.nc;
  int n = chunk_len(s, c);
  int pair = (int)blockIdx.y, rt = 0;
  while ((rt + 1) * (rt + 2) / 2 <= pair) rt++;
  int r0 = rt * TILE, s0 = (pair - rt * (rt + 1) / 2) * TILE;
  if (r0 >= n) return;
  int dim = DP ? s.dv : s.dk;
  bool vec = DP ? s.vv : s.vk;
  int64_t ld = (int64_t)s.H * dim, row0 = row_of(s, bh, c * s.C);
  const T *xc = x + row0 * dim, *yc = y + row0 * dim;
  decays d = decays_of(s, bc, GATED, bh, c);
  int ty = (int)threadIdx.x / 16, tx = (int)threadIdx.x % 16;
  bool above = r0 == s0 && tx > ty; /* all of the thread's pairs have s > t */
  float acc[4][4] = {};
  part p[4];
  auto fetch_step = [&](int x0) {
    p[0] = fetch<false, PLAIN>(xc, ld, r0, n, x0, dim, vec);
    p[1] = fetch<false, PLAIN>(yc, ld, s0, n, x0, dim, vec);
    if constexpr (EXPS) {
      p[2] = fetch<false, PLAIN>(d.p, d.ld, r0, n, x0, dim, vec);
      p[3] = fetch<false, PLAIN>(d.p, d.ld, s0, n, x0, dim, vec);
    }
  };
  fetch_step(0);
  for (int x0 = 0; x0 < dim; x0 += KS) {
    put<false, PLAIN>(xs, p[0]);
    put<false, PLAIN>(ys, p[1]);
    if constexpr (EXPS) {
      put<false, PLAIN>(bxs, p[2]);
      put<false, PLAIN>(bys, p[3]);
    }
    __syncthreads();
    if (x0 + KS < dim) fetch_step(x0 + KS);
    if constexpr (!EXPS) {
      mma_steps(acc, xs, ys, KS, ty, tx);
    } else if (!above) {
#pragma unroll 2
      for (int kk = 0; kk < KS; kk++) {
        float a[4], b[4], ba[4], bb[4];
        take(a, xs, kk, ty * 4);
        take(b, ys, kk, tx * 4);
        take(ba, bxs, kk, ty * 4);
        take(bb, bys, kk, tx * 4);
#pragma unroll
        for (int r = 0; r < 4; r++)
#pragma unroll
          for (int cc = 0; cc < 4; cc++)
            acc[r][cc] = fmaf(a[r] * b[cc], ex(ba[r] - bb[cc]), acc[r][cc]);
      }
    }
    __syncthreads();
  }
  float gamma = GATED ? 0.f : d.at(0, 0);
  float *out = P + ((int64_t)bh * s.nc + c) * s.C * s.ldp;
  for (int r = 0; r < 4; r++) {
    int t = r0 + ty * 4 + r;
    if (t >= n) break;
    for (int cc = 0; cc < 4; cc++) {
      int u = s0 + tx * 4 + cc;
      if (u >= n) break;
      float v = u <= t ? acc[r][cc] : 0.f;
      if (!GATED && u <= t) v *= expf(gamma * (float)(t - u));
      out[(int64_t)t * s.ldp + u] = v;
    }
  }
}

/* What a rows kernel computes, for one (head, chunk) and a 64 x 64 tile of its output:
 *   OUT  o  = (q * exp(b)) S + A V                         (rows t, columns of v)
 *   DV   dv += (k * exp(B - b)) dS + A^T dO                 (rows s, columns of v)
 *   DQ   dq += exp(b) * (dO S^T) + pairs over s <= t        (rows t, columns of k)
 *   DK   dk += exp(B - b) * (V dS^T) + pairs over t >= s    (rows s, columns of k)
 * with S the state before the chunk and dS the gradient of the state after it. */
enum rows_mode { OUT, DV, DQ, DK };

/* The inputs in T, the output in TO (f32 for a gated dq and dk, else T). */
template <typename T, typename TO> struct rows_args {
  const T *q, *k, *v, *go;
  const float *bc, *P, *S; /* S: the states (OUT, DQ) or their gradients */
  TO *out;
  bool add; /* add to out (a gradient), else write it */
};

template <int MODE, bool GATED, typename T, typename TO>
__global__ void __launch_bounds__(THREADS) rows_kernel(gla_shape s, rows_args<T, TO> a) {
  constexpr bool BEFORE = MODE == OUT || MODE == DQ; /* pairs with s <= t; else t >= s */
  constexpr bool KCOLS = MODE == DQ || MODE == DK;   /* output columns are key channels */
  constexpr bool SPLIT = GATED && KCOLS;             /* pairs weighted per channel */
  __shared__ __align__(16) float xs[KS][LDS];
  __shared__ __align__(16) float zs[KS][LDS];
  __shared__ __align__(16) float bs[SPLIT ? KS : 1][LDS];
  int bh = (int)blockIdx.x / s.nc, c = (int)blockIdx.x % s.nc;
  int n = chunk_len(s, c);
  int r0 = (int)blockIdx.y * TILE, col0 = (int)blockIdx.z * TILE;
  if (r0 >= n) return;
  int ncol = KCOLS ? s.dk : s.dv, nx = KCOLS ? s.dv : s.dk;
  int64_t ldk = (int64_t)s.H * s.dk, ldv = (int64_t)s.H * s.dv, row0 = row_of(s, bh, c * s.C);
  const T *qc = a.q + row0 * s.dk, *kc = a.k + row0 * s.dk;
  const T *vc = a.v + row0 * s.dv, *goc = a.go + row0 * s.dv;
  const float *S = a.S + ((int64_t)bh * s.nc + c) * s.per_state;
  const float *Pc = a.P + ((int64_t)bh * s.nc + c) * s.C * s.ldp;
  decays d = decays_of(s, a.bc, GATED, bh, c);
  int ty = (int)threadIdx.x / 16, tx = (int)threadIdx.x % 16;
  int tr = r0 + ty * 4, tcol = col0 + tx * 4; /* the thread's first row and column */
  float acc[4][4] = {};

  /* Phase 1: the products with the state (or its gradient), over nx channels: xs[kk][row] =
   * q exp(b), k exp(B - b), dO or v; zs[kk][col] = S[x][col] (OUT, DV) or S[col][x] (DQ, DK). */
  constexpr int SC1 = MODE == OUT ? EXP_B : MODE == DV ? EXP_BL_MINUS_B : PLAIN;
  part px, pz;
  auto fetch1 = [&](int x0) {
    if constexpr (MODE == OUT || MODE == DV)
      px = fetch<false, SC1>(MODE == OUT ? qc : kc, ldk, r0, n, x0, s.dk, s.vk, d, n - 1);
    else
      px = fetch<false, PLAIN>(MODE == DQ ? goc : vc, ldv, r0, n, x0, s.dv, s.vv);
    if constexpr (KCOLS)
      pz = fetch<false, PLAIN>(S, s.dv, col0, s.dk, x0, s.dv, s.vv);
    else
      pz = fetch<true, PLAIN>(S, s.dv, x0, s.dk, col0, s.dv, s.vv);
  };
  fetch1(0);
  for (int x0 = 0; x0 < nx; x0 += KS) {
    put<false, SC1>(xs, px);
    put<!KCOLS, PLAIN>(zs, pz);
    __syncthreads();
    if (x0 + KS < nx) fetch1(x0 + KS);
    mma_steps(acc, xs, zs, KS, ty, tx);
    __syncthreads();
  }

  /* dq and dk: the scale of phase 1, exp(b_t) or exp(B - b_s), and the decays of the thread's
   * rows for the pairs. */
  float br[4][4] = {};
  if (KCOLS) {
    float bl[4];
    unpack(bl, decay4(d, n - 1, tcol, s.dk, s.vk));
    for (int r = 0; r < 4; r++) {
      if (tr + r < n) unpack(br[r], decay4(d, tr + r, tcol, s.dk, s.vk));
      for (int cc = 0; cc < 4; cc++) acc[r][cc] *= ex(MODE == DQ ? br[r][cc] : bl[cc] - br[r][cc]);
    }
  }

  /* Phase 2: the pairs inside the chunk, 16 tokens per step: s from the chunk's start to the end
   * of the row tile (BEFORE), or t from the tile's start to the chunk's end. */
  float accf[4][4] = {}; /* SPLIT: the sums on the far side of the reference row */
  int mref = imax(0, imin(3, n - 1 - tr));
  float bm[4]; /* the reference row's decays: row tr (dq) or tr + mref (dk) */
  for (int cc = 0; cc < 4; cc++) bm[cc] = MODE == DQ ? br[0][cc] : br[mref][cc];
  int k_begin = BEFORE ? 0 : r0, k_end = BEFORE ? imin(r0 + TILE, n) : n;
  const T *yc = MODE == OUT ? vc : MODE == DV ? goc : MODE == DQ ? kc : qc;
  int64_t ldy = KCOLS ? ldk : ldv;
  bool vy = KCOLS ? s.vk : s.vv;
  part pp, py, pb;
  auto fetch2 = [&](int k0) {
    if constexpr (BEFORE) /* xs[kk][t] = P[t][k0 + kk] */
      pp = fetch<false, PLAIN>(Pc, s.ldp, r0, n, k0, n, true);
    else /* xs[kk][s] = P[k0 + kk][s] */
      pp = fetch<true, PLAIN>(Pc, s.ldp, k0, n, r0, n, true);
    py = fetch<true, PLAIN>(yc, ldy, k0, n, col0, ncol, vy);
    if constexpr (SPLIT) pb = fetch<true, PLAIN>(d.p, d.ld, k0, n, col0, s.dk, s.vk);
  };
  if (k_begin < k_end) fetch2(k_begin);
  for (int k0 = k_begin; k0 < k_end; k0 += KS) {
    put<!BEFORE, PLAIN>(xs, pp);
    put<true, PLAIN>(zs, py);
    if constexpr (SPLIT) put<true, PLAIN>(bs, pb);
    __syncthreads();
    if (k0 + KS < k_end) fetch2(k0 + KS);
    int steps = imin(KS, n - k0);
    if constexpr (!SPLIT) {
      /* P is zero above the diagonal: skip the steps beyond the thread's rows (the same for the
       * two row groups of a warp, as steps start at multiples of 16). */
      if (BEFORE ? k0 <= tr + 3 : k0 + KS > tr) mma_steps(acc, xs, zs, steps, ty, tx);
    } else {
      for (int kk = 0; kk < steps; kk++) {
        int u = k0 + kk; /* s for dq, t for dk */
        float p[4], y[4], bu[4];
        take(p, xs, kk, ty * 4);
        take(y, zs, kk, tx * 4);
        take(bu, bs, kk, tx * 4);
        bool far = MODE == DQ ? u <= tr : u >= tr + mref;
        bool near = MODE == DQ ? u <= tr + 3 : u >= tr;
        if (far) {
          float f[4];
#pragma unroll
          for (int cc = 0; cc < 4; cc++)
            f[cc] = y[cc] * ex(MODE == DQ ? bm[cc] - bu[cc] : bu[cc] - bm[cc]);
#pragma unroll
          for (int r = 0; r < 4; r++)
#pragma unroll
            for (int cc = 0; cc < 4; cc++) accf[r][cc] = fmaf(p[r], f[cc], accf[r][cc]);
        } else if (near) {
#pragma unroll
          for (int r = 0; r < 4; r++) {
            if (MODE == DQ ? u > tr + r : u < tr + r) continue;
#pragma unroll
            for (int cc = 0; cc < 4; cc++) {
              float e = ex(MODE == DQ ? br[r][cc] - bu[cc] : bu[cc] - br[r][cc]);
              acc[r][cc] = fmaf(p[r] * y[cc], e, acc[r][cc]);
            }
          }
        }
      }
    }
    __syncthreads();
  }

  TO *out = a.out + row0 * ncol;
  int64_t ldo = (int64_t)s.H * ncol;
  bool vec = KCOLS ? s.vk : s.vv;
  for (int r = 0; r < 4; r++) {
    int t = tr + r;
    if (t >= n) break;
    if (SPLIT)
      for (int cc = 0; cc < 4; cc++)
        acc[r][cc] += accf[r][cc] * ex(MODE == DQ ? br[r][cc] - bm[cc] : bm[cc] - br[r][cc]);
    store4(out + t * ldo, tcol, ncol, vec, acc[r], MODE != OUT && a.add);
  }
}

/* The gate gradient's reverse sums, per batch over its H dk running sums: first each segment's
 * total, then per segment the sums of the segments after it and its own reverse cumulative sum. */
template <typename S>
__global__ void gate_segment_sums(int B, int T, int W, int nseg, const S *q, const S *k,
                                  const float *dq, const float *dk, float *sums) {
  HY_GRID_STRIDE(x, (int64_t)B * nseg * W) {
    int w = (int)(x % W), seg = (int)(x / W % nseg), b = (int)(x / W / nseg);
    int ta = seg * SEG, te = imin(T, ta + SEG);
    float run = 0.f;
    for (int t = te - 1; t >= ta; t--) {
      int64_t at = ((int64_t)b * T + t) * W + w;
      run += ld(q + at) * dq[at] - ld(k + at) * dk[at];
    }
    sums[x] = run;
  }
}

template <typename S>
__global__ void gate_reverse_cumsum(int B, int T, int W, int nseg, const S *q, const S *k,
                                    const float *dq, const float *dk, const float *sums, S *gg,
                                    bool add) {
  HY_GRID_STRIDE(x, (int64_t)B * nseg * W) {
    int w = (int)(x % W), seg = (int)(x / W % nseg), b = (int)(x / W / nseg);
    int ta = seg * SEG, te = imin(T, ta + SEG);
    float run = 0.f;
    for (int later = nseg - 1; later > seg; later--)
      run += sums[((int64_t)b * nseg + later) * W + w];
    for (int t = te - 1; t >= ta; t--) {
      int64_t at = ((int64_t)b * T + t) * W + w;
      run += ld(q + at) * dq[at] - ld(k + at) * dk[at];
      st(gg + at, add ? ld(gg + at) + run : run);
    }
  }
}

int tiles(int64_t n) { return (int)((n + TILE - 1) / TILE); }

/* vk, vv: whether the rows of the dk-wide (dv-wide) operands the call reads or writes may be moved
 * four values at a time (ld4, st4): the width a multiple of 4 and every such pointer aligned for
 * its type. */
gla_shape shape_of(const hy_gla_dims *dm, bool vk, bool vv) {
  gla_shape s;
  s.B = (int)dm->B;
  s.T = (int)dm->T;
  s.H = (int)dm->H;
  s.dk = (int)dm->dk;
  s.dv = (int)dm->dv;
  s.C = (int)dm->C;
  s.nc = (int)dm->n_chunks;
  s.ldp = (s.C + 3) / 4 * 4;
  s.per_state = dm->dk * dm->dv;
  s.vk = vk && dm->dk % 4 == 0;
  s.vv = vv && dm->dv % 4 == 0;
  return s;
}

bool empty(const hy_gla_dims *dm) { return dm->B * dm->T * dm->H * dm->dk * dm->dv == 0; }

/* The cumulative log decays, in the step arena: [B, T, H, dk] with g, else the table [H, C]. */
template <typename T> float *chunk_decays(const gla_shape &s, const hy_gla_dims *dm, const T *g) {
  if (g) {
    float *b = (float *)hy_arena_alloc_on(HY_CUDA, sizeof(float) * (size_t)(s.B * s.T) *
                                                       (size_t)(s.H * s.dk));
    decay_cumsum<<<hy_cuda_blocks((int64_t)s.B * s.nc * s.H * s.dk), HY_CUDA_THREADS, 0,
                   hy_cuda_stream()>>>(s, g, b);
    HY_CUDA_LAUNCHED(decay_cumsum);
    return b;
  }
  if (s.H > MAX_HEADS) hy_die("gla", "%d heads with a constant decay (at most %d)", s.H, MAX_HEADS);
  head_decays hd;
  for (int h = 0; h < MAX_HEADS; h++)
    hd.g[h] = dm->head_decay && h < s.H ? (float)dm->head_decay[h] : 0.f;
  float *b = (float *)hy_arena_alloc_on(HY_CUDA, sizeof(float) * (size_t)s.H * (size_t)s.C);
  decay_table<<<1, 32, 0, hy_cuda_stream()>>>(s, hd, b);
  HY_CUDA_LAUNCHED(decay_table);
  return b;
}

float *pair_scratch(const gla_shape &s) {
  return (float *)hy_arena_alloc_on(HY_CUDA, sizeof(float) * (size_t)(s.B * s.H * s.nc) *
                                                 (size_t)s.C * (size_t)s.ldp);
}

dim3 pair_grid(const gla_shape &s) {
  int nt = tiles(s.C);
  return dim3((unsigned)(s.B * s.H * s.nc), (unsigned)(nt * (nt + 1) / 2));
}

template <int MODE, bool GATED, typename T, typename TO>
void run_rows(const gla_shape &s, const rows_args<T, TO> &a, int ncol) {
  dim3 grid((unsigned)(s.B * s.H * s.nc), (unsigned)tiles(s.C), (unsigned)tiles(ncol));
  rows_kernel<MODE, GATED><<<grid, THREADS, 0, hy_cuda_stream()>>>(s, a);
  HY_CUDA_LAUNCHED(rows_kernel);
}

template <bool GATED, typename T>
void forward(const gla_shape &s, const T *q, const T *k, const T *v, const float *bc, T *o,
             float *states) {
  if (s.nc > 1) {
    dim3 grid((unsigned)(s.B * s.H * (s.nc - 1)), (unsigned)tiles(s.dk), (unsigned)tiles(s.dv));
    chunk_state<false, GATED><<<grid, THREADS, 0, hy_cuda_stream()>>>(s, k, v, bc, states);
    HY_CUDA_LAUNCHED(chunk_state);
  }
  state_scan<false, GATED>
      <<<hy_cuda_blocks(s.B * s.H * s.per_state), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(s, bc,
                                                                                          states);
  HY_CUDA_LAUNCHED(state_scan);
  float *A = pair_scratch(s);
  pairs_kernel<GATED, false><<<pair_grid(s), THREADS, 0, hy_cuda_stream()>>>(s, q, k, bc, A);
  HY_CUDA_LAUNCHED(pairs_kernel);
  run_rows<OUT, GATED>(s, rows_args<T, T>{q, k, v, nullptr, bc, A, states, o, false}, s.dv);
}

/* Only what the requested gradients need: A for dv, dP for dq and dk, dS for dv and dk. dv first,
 * then dq, then dk: where two of q, k, v are one tensor, the order tensor/gla.c asks for their
 * gradients in (the first writer may overwrite). */
template <bool GATED, typename T, typename TQ>
void backward(const gla_shape &s, unsigned overwrite, const T *q, const T *k, const T *v,
              const float *bc, const float *states, const T *go, TQ *gq, TQ *gk, T *gv) {
  float *A = nullptr, *dP = nullptr, *dS = nullptr;
  if (gv) {
    A = pair_scratch(s);
    pairs_kernel<GATED, false><<<pair_grid(s), THREADS, 0, hy_cuda_stream()>>>(s, q, k, bc, A);
    HY_CUDA_LAUNCHED(pairs_kernel);
  }
  if (gq || gk) {
    dP = pair_scratch(s);
    pairs_kernel<GATED, true><<<pair_grid(s), THREADS, 0, hy_cuda_stream()>>>(s, go, v, bc, dP);
    HY_CUDA_LAUNCHED(pairs_kernel);
  }
  if (gv || gk) {
    dS = (float *)hy_arena_alloc_on(HY_CUDA, sizeof(float) * (size_t)(s.B * s.H * s.nc) *
                                                 (size_t)s.per_state);
    if (s.nc > 1) {
      dim3 grid((unsigned)(s.B * s.H * (s.nc - 1)), (unsigned)tiles(s.dk), (unsigned)tiles(s.dv));
      chunk_state<true, GATED><<<grid, THREADS, 0, hy_cuda_stream()>>>(s, q, go, bc, dS);
      HY_CUDA_LAUNCHED(chunk_state);
    }
    state_scan<true, GATED>
        <<<hy_cuda_blocks(s.B * s.H * s.per_state), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(s, bc,
                                                                                            dS);
    HY_CUDA_LAUNCHED(state_scan);
  }
  if (gv)
    run_rows<DV, GATED>(
        s, rows_args<T, T>{q, k, v, go, bc, A, dS, gv, !(overwrite & HY_OVERWRITE_V)}, s.dv);
  if (gq)
    run_rows<DQ, GATED>(
        s, rows_args<T, TQ>{q, k, v, go, bc, dP, states, gq, !(overwrite & HY_OVERWRITE_Q)}, s.dk);
  if (gk)
    run_rows<DK, GATED>(
        s, rows_args<T, TQ>{q, k, v, go, bc, dP, dS, gk, !(overwrite & HY_OVERWRITE_K)}, s.dk);
}

/* Scratch (the decays, the pair matrices, the state gradients) lives in the step arena until the
 * kernels that use it are queued; they run in order on hyla's stream, before anything that
 * reuses the memory. */
template <typename T>
void gla_forward(const hy_gla_dims *dims, const T *q, const T *k, const T *v, const T *g, T *o,
                 float *states) {
  if (empty(dims)) return;
  gla_shape s = shape_of(dims, hy_aligned4<T>(q) && hy_aligned4<T>(k),
                         hy_aligned4<T>(v) && hy_aligned4<T>(o) && hy_aligned4<float>(states));
  hy_arena_mark mark = hy_arena_get_mark();
  const float *bc = chunk_decays(s, dims, g);
  if (g)
    forward<true>(s, q, k, v, bc, o, states);
  else
    forward<false>(s, q, k, v, bc, o, states);
  hy_arena_rewind(mark);
}

/* gq, gk: f32 with a gate (for its gradient), else T. */
template <typename T>
void gla_backward(const hy_gla_dims *dims, const T *q, const T *k, const T *v, const T *g,
                  const float *states, const T *go, void *gq, void *gk, T *gv) {
  if (empty(dims) || (!gq && !gk && !gv)) return;
  bool dq_aligned = g ? hy_aligned4<float>(gq) && hy_aligned4<float>(gk)
                      : hy_aligned4<T>(gq) && hy_aligned4<T>(gk);
  gla_shape s = shape_of(dims, hy_aligned4<T>(q) && hy_aligned4<T>(k) && dq_aligned,
                         hy_aligned4<T>(v) && hy_aligned4<T>(go) && hy_aligned4<T>(gv) &&
                             hy_aligned4<float>(states));
  hy_arena_mark mark = hy_arena_get_mark();
  const float *bc = chunk_decays(s, dims, g);
  if (g)
    backward<true>(s, dims->overwrite, q, k, v, bc, states, go, (float *)gq, (float *)gk, gv);
  else
    backward<false>(s, dims->overwrite, q, k, v, bc, states, go, (T *)gq, (T *)gk, gv);
  hy_arena_rewind(mark);
}

template <typename T>
void gla_gate_grad(const hy_gla_dims *dims, const T *q, const T *k, const float *dq,
                   const float *dk, T *gg) {
  if (empty(dims)) return;
  int B = (int)dims->B, T_ = (int)dims->T, W = (int)(dims->H * dims->dk),
      nseg = (T_ + SEG - 1) / SEG;
  hy_arena_mark mark = hy_arena_get_mark();
  float *sums =
      (float *)hy_arena_alloc_on(HY_CUDA, sizeof(float) * (size_t)B * (size_t)nseg * (size_t)W);
  unsigned blocks = hy_cuda_blocks((int64_t)B * nseg * W);
  if (nseg > 1) {
    gate_segment_sums<<<blocks, HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(B, T_, W, nseg, q, k, dq,
                                                                        dk, sums);
    HY_CUDA_LAUNCHED(gate_segment_sums);
  }
  gate_reverse_cumsum<<<blocks, HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(
      B, T_, W, nseg, q, k, dq, dk, sums, gg, !(dims->overwrite & HY_OVERWRITE_G));
  HY_CUDA_LAUNCHED(gate_reverse_cumsum);
  hy_arena_rewind(mark);
}

const bf16 *as_bf16(const hy_bf16 *p) { return reinterpret_cast<const bf16 *>(p); }
bf16 *as_bf16(hy_bf16 *p) { return reinterpret_cast<bf16 *>(p); }

} // namespace

extern "C" void cuda_gla_f32(const hy_gla_dims *dims, const float *q, const float *k,
                             const float *v, const float *g, float *o, float *states) {
  gla_forward(dims, q, k, v, g, o, states);
}

extern "C" void cuda_gla_bf16(const hy_gla_dims *dims, const hy_bf16 *q, const hy_bf16 *k,
                              const hy_bf16 *v, const hy_bf16 *g, hy_bf16 *o, float *states) {
  gla_forward(dims, as_bf16(q), as_bf16(k), as_bf16(v), as_bf16(g), as_bf16(o), states);
}

extern "C" void cuda_gla_backward_f32(const hy_gla_dims *dims, const float *q, const float *k,
                                      const float *v, const float *g, const float *states,
                                      const float *go, float *gq, float *gk, float *gv) {
  gla_backward(dims, q, k, v, g, states, go, gq, gk, gv);
}

extern "C" void cuda_gla_backward_bf16(const hy_gla_dims *dims, const hy_bf16 *q, const hy_bf16 *k,
                                       const hy_bf16 *v, const hy_bf16 *g, const float *states,
                                       const hy_bf16 *go, void *gq, void *gk, hy_bf16 *gv) {
  gla_backward(dims, as_bf16(q), as_bf16(k), as_bf16(v), as_bf16(g), states, as_bf16(go), gq, gk,
               as_bf16(gv));
}

extern "C" void cuda_gla_gate_grad_f32(const hy_gla_dims *dims, const float *q, const float *k,
                                       const float *dq, const float *dk, float *gg) {
  gla_gate_grad(dims, q, k, dq, dk, gg);
}

extern "C" void cuda_gla_gate_grad_bf16(const hy_gla_dims *dims, const hy_bf16 *q, const hy_bf16 *k,
                                        const float *dq, const float *dk, hy_bf16 *gg) {
  gla_gate_grad(dims, as_bf16(q), as_bf16(k), dq, dk, as_bf16(gg));
}
