#include "tensor/cuda/common.cuh"
extern "C" {
#include "tensor/arena.h"
}

#include <math.h>

/* The Titans memory scan on the GPU in f32: the twin of tensor/cpu/titans_scan.c (the recurrence,
 * its backward and what is saved: tensor/titans_scan.c; the formulas of each step: the CPU file),
 * written function by function as the CPU's, so that one reads against the other. The same
 * layouts (q, k, v, y and their gradients [B, H, T, D], theta [B, H, T, 1], eta and keep
 * [B, H, N, 1], states and momenta [B, H, slots, P], the work [B, H, P], a state handed in or on
 * [B, H, 2 P]), the same products and
 * elementwise steps in the same order, gradients accumulated (+=) and any of them NULL.
 *
 * One block per (batch, head) walks the chunks in order, as one CPU task does. Each GEMM of the
 * CPU is a block GEMM, one thread per output element summing over the contraction in order, and
 * each loop a loop strided over the block's threads; every phase ends with __syncthreads(), so
 * that the next reads what it wrote. The CPU's per-thread scratch is global memory, one slice per
 * block, from the arena. The dot products over the memory's size (the gates' gradients) are
 * per-thread partial sums added by hy_block_sum; M_0's gradient goes per sequence into the work
 * buffer, and a second kernel sums it over the batch in batch order. No atomics: every sum has a
 * fixed order and the results are the same from run to run. Simple rather than fast: the block
 * GEMMs read their operands from global memory (L1 and L2 hold one head's weights). */

namespace {

/* Threads per block. The launch bounds ask for one block per SM: the inlined phases then keep
 * everything in registers (about 225 a thread in the backward) instead of spilling. */
constexpr int THREADS = 256;

/* hy_titans_dims in int: every size within one head fits (shape_of checks it). */
struct scan_dims {
  int B, H, T, D, F, C, N, depth, P, slots;
};

/* The weights of one head: depth 1 uses w1 only. */
struct weights {
  const float *w1, *w2;
};

struct scratch {
  float *h, *a, *s1, *p, *z, *dz, *dh, *da; /* [C, F] */
  float *e, *g, *dg;                        /* [C, D] */
  float *u, *gw, *gs;                       /* [P]: U or its cotangent; dL/dW, dL/dS */
};

/* Rows of one chunk or one group of readers: at most C, and at most T. */
__host__ __device__ size_t chunk_rows(const scan_dims &dm) {
  return (size_t)(dm.C < dm.T ? dm.C : dm.T);
}

/* Floats of one block's scratch: the forward needs h, a, s1, p, z, e, g and u. */
__host__ __device__ size_t scratch_floats(const scan_dims &dm, bool backward) {
  size_t CF = chunk_rows(dm) * dm.F, CD = chunk_rows(dm) * dm.D, P = (size_t)dm.P;
  return backward ? 8 * CF + 3 * CD + 3 * P : 5 * CF + 2 * CD + P;
}

/* This block's slice of the scratch at base; the buffers the forward does not use are NULL. */
__device__ scratch scratch_of(const scan_dims &dm, bool backward, float *base) {
  size_t CF = chunk_rows(dm) * dm.F, CD = chunk_rows(dm) * dm.D, P = (size_t)dm.P;
  float *at = base + (size_t)blockIdx.x * scratch_floats(dm, backward);
  scratch w = {};
  w.h = at;
  w.a = at + CF;
  w.s1 = at + 2 * CF;
  w.p = at + 3 * CF;
  w.z = at + 4 * CF;
  at += 5 * CF;
  w.e = at;
  w.g = at + CD;
  w.u = at + 2 * CD;
  at += 2 * CD + P;
  if (backward) {
    w.dz = at;
    w.dh = at + CF;
    w.da = at + 2 * CF;
    w.dg = at + 3 * CF;
    w.gw = at + 3 * CF + CD;
    w.gs = at + 3 * CF + CD + P;
  }
  return w;
}

/* Row-major C = alpha op(A) op(B) + beta C as cpu_gemm (beta 0: C is not read). Every thread of
 * the block calls it; thread x owns the elements x, x + blockDim.x, ... of C and sums over K in
 * order. It returns when all of C is written. */
__device__ void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                     int lda, const float *B, int ldb, float beta, float *C, int ldc) {
  for (int x = (int)threadIdx.x; x < M * N; x += (int)blockDim.x) {
    int m = x / N, n = x % N;
    float acc = 0.f;
    for (int k = 0; k < K; k++) {
      float a = trans_a ? A[k * lda + m] : A[m * lda + k];
      float b = trans_b ? B[n * ldb + k] : B[k * ldb + n];
      acc = fmaf(a, b, acc);
    }
    float *c = C + m * ldc + n;
    *c = beta == 0.f ? alpha * acc : alpha * acc + beta * *c;
  }
  __syncthreads();
}

/* As tensor/cuda/unary.cu (and the CPU) compute it. */
__device__ __forceinline__ float sigmoid(float x) {
  float e = expf(-fabsf(x));
  return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

/* a = silu(h), s1 = silu'(h) over n values (s1 may be NULL). */
__device__ void silu_and_slope(int n, const float *h, float *a, float *s1) {
  for (int i = (int)threadIdx.x; i < n; i += (int)blockDim.x) {
    float s = sigmoid(h[i]);
    a[i] = h[i] * s;
    if (s1) s1[i] = s * (h[i] * (1 - s) + 1);
  }
  __syncthreads();
}

__device__ weights state_weights(const scan_dims &dm, const float *state) {
  return weights{state, dm.depth == 2 ? state + dm.D * dm.F : nullptr};
}

/* The rows of group j, those reading the weights after j updates: [j C - 1, j C + C - 1) within
 * [0, T). */
__device__ void group_rows(const scan_dims &dm, int j, int *r0, int *r1) {
  int lo = j * dm.C - 1, hi = j * dm.C + dm.C - 1;
  *r0 = lo > 0 ? lo : 0;
  *r1 = hi < dm.T ? hi : dm.T;
}

/* y = M(W; q) for n rows. */
__device__ void retrieve(const scan_dims &dm, weights W, const float *q, int n, float *y,
                         const scratch &w) {
  int D = dm.D, F = dm.F;
  if (n <= 0) return;
  if (dm.depth == 1) {
    gemm(false, false, n, D, D, 1.f, q, D, W.w1, D, 0.f, y, D);
    return;
  }
  gemm(false, false, n, F, D, 1.f, q, D, W.w1, F, 0.f, w.h, F);
  silu_and_slope(n * F, w.h, w.a, nullptr);
  gemm(false, false, n, D, F, 1.f, w.a, F, W.w2, D, 0.f, y, D);
}

/* The explicit gradient of n rows at W: E, G (and H, A, s1, P, Z at depth 2) into the scratch,
 * U into u unless it is NULL. */
__device__ void chunk_grad(const scan_dims &dm, weights W, const float *k, const float *v,
                           const float *th, int n, const scratch &w, float *u) {
  int D = dm.D, F = dm.F;
  if (dm.depth == 2) {
    gemm(false, false, n, F, D, 1.f, k, D, W.w1, F, 0.f, w.h, F);
    silu_and_slope(n * F, w.h, w.a, w.s1);
  }
  const float *in = dm.depth == 1 ? k : w.a, *w_out = dm.depth == 1 ? W.w1 : W.w2;
  int width = dm.depth == 1 ? D : F;
  gemm(false, false, n, D, width, 1.f, in, width, w_out, D, 0.f, w.e, D);
  for (int x = (int)threadIdx.x; x < n * D; x += (int)blockDim.x) {
    int t = x / D;
    float e = w.e[x] - v[x];
    w.e[x] = e;
    w.g[x] = e * th[t] * 2;
  }
  __syncthreads();
  if (dm.depth == 1) {
    if (u) gemm(true, false, D, D, n, 1.f, k, D, w.g, D, 0.f, u, D);
    return;
  }
  gemm(false, true, n, F, D, 1.f, w.g, D, W.w2, D, 0.f, w.p, F);
  for (int i = (int)threadIdx.x; i < n * F; i += (int)blockDim.x) w.z[i] = w.p[i] * w.s1[i];
  __syncthreads();
  if (!u) return;
  gemm(true, false, D, F, n, 1.f, k, D, w.z, F, 0.f, u, F);
  gemm(true, false, F, D, n, 1.f, w.a, F, w.g, D, 0.f, u + D * F, D);
}

/* S' = eta S - U (S NULL: S' = -U), W' = keep W + S'. Element i of S', U and W' is one thread's:
 * W' reads the S' the same thread wrote. */
__device__ void update(const scan_dims &dm, weights W, const float *s, const float *u, float eta,
                       float keep, float *w_next, float *s_next) {
  int part = dm.D * dm.F;
  for (int i = (int)threadIdx.x; i < dm.P; i += (int)blockDim.x) {
    s_next[i] = s ? s[i] * eta - u[i] : -u[i];
    int l = i >= part;
    const float *src = l ? W.w2 : W.w1;
    w_next[i] = src[i - l * part] * keep + s_next[i];
  }
  __syncthreads();
}

__device__ weights head_m0(const scan_dims &dm, const float *w1, const float *w2, int h) {
  int64_t part = (int64_t)dm.D * dm.F;
  return weights{w1 + h * part, w2 ? w2 + h * part : nullptr};
}

/* The state a sequence starts from: its own (init [2 P]: weights, then momentum) or M_0 of head h
 * with no momentum (*s0 NULL). */
__device__ weights start_of(const scan_dims &dm, const float *w1, const float *w2,
                            const float *init, int bh, const float **s0) {
  if (!init) {
    *s0 = nullptr;
    return head_m0(dm, w1, w2, bh % dm.H);
  }
  const float *base = init + (int64_t)bh * 2 * dm.P;
  *s0 = base + dm.P;
  return state_weights(dm, base);
}

/* final [2 P] = the weights W and the momentum s (NULL: zero). */
__device__ void store_state(const scan_dims &dm, weights W, const float *s, float *final) {
  int part = dm.D * dm.F;
  for (int i = (int)threadIdx.x; i < dm.P; i += (int)blockDim.x) {
    int l = i >= part;
    const float *src = l ? W.w2 : W.w1;
    final[i] = src[i - l * part];
    final[dm.P + i] = s ? s[i] : 0.f;
  }
  __syncthreads();
}

__device__ void forward_head(const scan_dims &dm, const float *q, const float *k, const float *v,
                             const float *th, const float *eta, const float *keep, weights W,
                             const float *s, float *y, float *states, float *momenta, float *final,
                             const scratch &w) {
  int D = dm.D, C = dm.C, r0, r1;
  group_rows(dm, 0, &r0, &r1);
  retrieve(dm, W, q + r0 * D, r1 - r0, y + r0 * D, w);
  for (int j = 0; j < dm.N; j++) {
    int t0 = j * C;
    chunk_grad(dm, W, k + t0 * D, v + t0 * D, th + t0, C, w, w.u);
    float *wn = states + (int64_t)(j % dm.slots) * dm.P;
    float *sn = momenta + (int64_t)(j % dm.slots) * dm.P;
    update(dm, W, s, w.u, eta[j], keep[j], wn, sn);
    W = state_weights(dm, wn);
    s = sn;
    group_rows(dm, j + 1, &r0, &r1);
    retrieve(dm, W, q + r0 * D, r1 - r0, y + r0 * D, w);
  }
  if (final) store_state(dm, W, s, final);
}

/* One block per (b, h), as the CPU's tasks. */
__global__ void __launch_bounds__(THREADS, 1)
    scan_forward(scan_dims dm, const float *q, const float *k, const float *v, const float *theta,
                 const float *eta, const float *keep, const float *w1, const float *w2,
                 const float *init, float *y, float *states, float *momenta, float *final,
                 float *scratch_base) {
  int bh = (int)blockIdx.x;
  int64_t TD = (int64_t)dm.T * dm.D, NP = (int64_t)dm.slots * dm.P;
  scratch w = scratch_of(dm, false, scratch_base);
  const float *s0;
  weights W = start_of(dm, w1, w2, init, bh, &s0);
  forward_head(dm, q + bh * TD, k + bh * TD, v + bh * TD, theta + (int64_t)bh * dm.T,
               eta ? eta + (int64_t)bh * dm.N : nullptr, keep ? keep + (int64_t)bh * dm.N : nullptr,
               W, s0, y + bh * TD, states + bh * NP, momenta + bh * NP,
               final ? final + (int64_t)bh * 2 * dm.P : nullptr, w);
}

/* ---- backward ---- */

/* The gradients of one head's inputs (any may be NULL: not wanted). */
struct head_grads {
  float *q, *k, *v, *th, *eta, *keep;
};

/* The rows [r0, r1) read W: gq += dM/dq, gw += dM/dW for their output gradient gy. */
__device__ void retrieve_backward(const scan_dims &dm, weights W, const float *q, const float *gy,
                                  int r0, int r1, float *gq, const scratch &w) {
  int D = dm.D, F = dm.F, n = r1 - r0;
  if (n <= 0) return;
  q += r0 * D;
  gy += r0 * D;
  if (dm.depth == 1) {
    if (gq) gemm(false, true, n, D, D, 1.f, gy, D, W.w1, D, 1.f, gq + r0 * D, D);
    gemm(true, false, D, D, n, 1.f, q, D, gy, D, 1.f, w.gw, D);
    return;
  }
  gemm(false, false, n, F, D, 1.f, q, D, W.w1, F, 0.f, w.h, F);
  silu_and_slope(n * F, w.h, w.a, w.s1);
  gemm(true, false, F, D, n, 1.f, w.a, F, gy, D, 1.f, w.gw + D * F, D);
  gemm(false, true, n, F, D, 1.f, gy, D, W.w2, D, 0.f, w.dh, F);
  for (int i = (int)threadIdx.x; i < n * F; i += (int)blockDim.x) w.dh[i] *= w.s1[i];
  __syncthreads();
  gemm(true, false, D, F, n, 1.f, q, D, w.dh, F, 1.f, w.gw, F);
  if (gq) gemm(false, true, n, D, F, 1.f, w.dh, F, W.w1, F, 1.f, gq + r0 * D, D);
}

/* From dG of n rows: dtheta_t += 2 <dG_t, E_t>, then dG becomes dE = 2 theta dG, and gv -= dE.
 * One thread per row, the row's dot product in order as on the CPU. */
__device__ void loss_backward(const scan_dims &dm, const float *th, int n, const scratch &w,
                              float *gth, float *gv) {
  int D = dm.D;
  for (int t = (int)threadIdx.x; t < n; t += (int)blockDim.x) {
    float *dg = w.dg + t * D, acc = 0.f;
    const float *e = w.e + t * D;
    for (int i = 0; i < D; i++) acc += dg[i] * e[i];
    if (gth) gth[t] += 2 * acc;
    for (int i = 0; i < D; i++) dg[i] *= 2 * th[t];
    if (gv)
      for (int i = 0; i < D; i++) gv[t * D + i] -= dg[i];
  }
  __syncthreads();
}

/* The VJP of U (taken at W over n rows k, v, th; intermediates in the scratch) for the cotangent
 * w.u: gw += dU/dW, and the rows' gk, gv, gth. */
__device__ void chunk_grad_backward(const scan_dims &dm, weights W, const float *k, const float *th,
                                    int n, const scratch &w, float *gk, float *gv, float *gth) {
  int D = dm.D, F = dm.F;
  const float *c1 = w.u, *c2 = w.u + D * F;
  if (dm.depth == 1) {
    gemm(false, false, n, D, D, 1.f, k, D, c1, D, 0.f, w.dg, D);
    if (gk) gemm(false, true, n, D, D, 1.f, w.g, D, c1, D, 1.f, gk, D);
    loss_backward(dm, th, n, w, gth, gv);
    if (gk) gemm(false, true, n, D, D, 1.f, w.dg, D, W.w1, D, 1.f, gk, D);
    gemm(true, false, D, D, n, 1.f, k, D, w.dg, D, 1.f, w.gw, D);
    return;
  }
  float *gw1 = w.gw, *gw2 = w.gw + D * F;
  gemm(false, false, n, F, D, 1.f, k, D, c1, F, 0.f, w.dz, F);
  if (gk) gemm(false, true, n, D, F, 1.f, w.z, F, c1, F, 1.f, gk, D);
  for (int i = (int)threadIdx.x; i < n * F; i += (int)blockDim.x) {
    /* dH (first part) = dZ P s2(H), then dZ becomes dP */
    float h = w.h[i], s = sigmoid(h);
    w.dh[i] = w.dz[i] * w.p[i] * (s * (1 - s) * (2 + h * (1 - 2 * s)));
    w.dz[i] *= w.s1[i];
  }
  __syncthreads();
  gemm(false, false, n, D, F, 1.f, w.dz, F, W.w2, D, 0.f, w.dg, D);
  gemm(true, false, F, D, n, 1.f, w.dz, F, w.g, D, 1.f, gw2, D);
  gemm(false, true, n, F, D, 1.f, w.g, D, c2, D, 0.f, w.da, F);
  gemm(false, false, n, D, F, 1.f, w.a, F, c2, D, 1.f, w.dg, D);
  loss_backward(dm, th, n, w, gth, gv);
  gemm(false, true, n, F, D, 1.f, w.dg, D, W.w2, D, 1.f, w.da, F);
  gemm(true, false, F, D, n, 1.f, w.a, F, w.dg, D, 1.f, gw2, D);
  for (int i = (int)threadIdx.x; i < n * F; i += (int)blockDim.x) w.dh[i] += w.da[i] * w.s1[i];
  __syncthreads();
  if (gk) gemm(false, true, n, D, F, 1.f, w.dh, F, W.w1, F, 1.f, gk, D);
  gemm(true, false, D, F, n, 1.f, k, D, w.dh, F, 1.f, gw1, F);
}

/* <a, W> over the memory's layers, in every thread. */
__device__ float dot_weights(const scan_dims &dm, const float *a, weights W) {
  int part = dm.D * dm.F;
  float acc = 0.f;
  for (int i = (int)threadIdx.x; i < dm.P; i += (int)blockDim.x) {
    int l = i >= part;
    const float *b = l ? W.w2 : W.w1;
    acc += a[i] * b[i - l * part];
  }
  return hy_block_sum(acc);
}

/* <a, b> over n floats, in every thread. */
__device__ float dot(int n, const float *a, const float *b) {
  float acc = 0.f;
  for (int i = (int)threadIdx.x; i < n; i += (int)blockDim.x) acc += a[i] * b[i];
  return hy_block_sum(acc);
}

/* Chunk j's update, backward: gw holds dL/dW^{j+1} and gs dL/dS^{j+1} from later chunks; on
 * return they hold dL/dW^j and dL/dS^j. */
__device__ void update_backward(const scan_dims &dm, weights W, const float *s, float eta,
                                float keep, float *geta, float *gkeep, const scratch &w) {
  int P = dm.P;
  /* S^{j+1} also feeds W^{j+1} */
  for (int i = (int)threadIdx.x; i < P; i += (int)blockDim.x) w.gs[i] += w.gw[i];
  __syncthreads();
  if (gkeep) {
    float d = dot_weights(dm, w.gw, W);
    if (threadIdx.x == 0) *gkeep += d;
  }
  if (geta && s) {
    float d = dot(P, w.gs, s);
    if (threadIdx.x == 0) *geta += d;
  }
  for (int i = (int)threadIdx.x; i < P; i += (int)blockDim.x) {
    w.u[i] = -w.gs[i]; /* dL/dU_j */
    w.gs[i] *= eta;
    w.gw[i] *= keep;
  }
  __syncthreads();
}

/* One sequence and head from its starting weights W0 and momentum s0 (NULL: zero). gfinal (or
 * NULL) is the gradient of the state handed on, [2 P]; the starting state's gradient goes to gm0
 * (the weights', written: M_0's before the sum over the batch) or is added to ginit ([2 P]). */
__device__ void backward_head(const scan_dims &dm, const float *q, const float *k, const float *v,
                              const float *th, const float *eta, const float *keep, weights W0,
                              const float *s0, const float *states, const float *momenta,
                              const float *gy, const float *gfinal, head_grads g, float *gm0,
                              float *ginit, const scratch &w) {
  int D = dm.D, C = dm.C, r0, r1;
  int64_t P = dm.P;
  for (int i = (int)threadIdx.x; i < dm.P; i += (int)blockDim.x) {
    w.gw[i] = gfinal ? gfinal[i] : 0.f;
    w.gs[i] = gfinal ? gfinal[P + i] : 0.f;
  }
  __syncthreads();
  for (int j = dm.N - 1; j >= 0; j--) {
    int t0 = j * C;
    weights Wn = state_weights(dm, states + j * P);
    weights Wp = j ? state_weights(dm, states + (j - 1) * P) : W0;
    group_rows(dm, j + 1, &r0, &r1);
    retrieve_backward(dm, Wn, q, gy, r0, r1, g.q, w);
    update_backward(dm, Wp, j ? momenta + (j - 1) * P : s0, eta[j], keep[j],
                    g.eta ? g.eta + j : nullptr, g.keep ? g.keep + j : nullptr, w);
    chunk_grad(dm, Wp, k + t0 * D, v + t0 * D, th + t0, C, w, nullptr);
    chunk_grad_backward(dm, Wp, k + t0 * D, th + t0, C, w, g.k ? g.k + t0 * D : nullptr,
                        g.v ? g.v + t0 * D : nullptr, g.th ? g.th + t0 : nullptr);
  }
  group_rows(dm, 0, &r0, &r1);
  retrieve_backward(dm, W0, q, gy, r0, r1, g.q, w);
  if (gm0)
    for (int i = (int)threadIdx.x; i < dm.P; i += (int)blockDim.x) gm0[i] = w.gw[i];
  if (ginit)
    for (int i = (int)threadIdx.x; i < dm.P; i += (int)blockDim.x) {
      ginit[i] += w.gw[i];
      ginit[P + i] += w.gs[i];
    }
}

__device__ float *offset(float *p, int64_t by) { return p ? p + by : nullptr; }

__global__ void __launch_bounds__(THREADS, 1)
    scan_backward(scan_dims dm, const float *q, const float *k, const float *v, const float *theta,
                  const float *eta, const float *keep, const float *w1, const float *w2,
                  const float *init, const float *states, const float *momenta, const float *gy,
                  const float *gfinal, float *gq, float *gk, float *gv, float *gtheta, float *geta,
                  float *gkeep, float *per_seq, float *ginit, float *scratch_base) {
  int bh = (int)blockIdx.x;
  int64_t TD = (int64_t)dm.T * dm.D, NP = (int64_t)dm.N * dm.P, T = dm.T, N = dm.N;
  int64_t P2 = 2 * (int64_t)dm.P;
  scratch w = scratch_of(dm, true, scratch_base);
  head_grads g = {offset(gq, bh * TD),    offset(gk, bh * TD),  offset(gv, bh * TD),
                  offset(gtheta, bh * T), offset(geta, bh * N), offset(gkeep, bh * N)};
  const float *s0;
  weights W0 = start_of(dm, w1, w2, init, bh, &s0);
  backward_head(dm, q + bh * TD, k + bh * TD, v + bh * TD, theta + bh * T,
                eta ? eta + bh * N : nullptr, keep ? keep + bh * N : nullptr, W0, s0,
                states + bh * NP, momenta + bh * NP, gy + bh * TD,
                gfinal ? gfinal + bh * P2 : nullptr, g, offset(per_seq, bh * (int64_t)dm.P),
                offset(ginit, bh * P2), w);
}

/* gw1, gw2 += the per-sequence gradients of M_0 summed over the batch, in batch order: one thread
 * per element of M_0. */
__global__ void reduce_m0(scan_dims dm, const float *per_seq, float *gw1, float *gw2) {
  int64_t part = (int64_t)dm.D * dm.F, P = dm.P, H = dm.H;
  HY_GRID_STRIDE(i, H * P) {
    int64_t h = i / P, e = i % P;
    float *dst = e < part ? offset(gw1, h * part + e) : offset(gw2, h * part + e - part);
    if (!dst) continue;
    float acc = 0.f;
    for (int64_t b = 0; b < dm.B; b++) acc += per_seq[(b * H + h) * P + e];
    *dst += acc;
  }
}

/* ---- launches ---- */

scan_dims shape_of(const hy_titans_dims *d) {
  const int64_t most = INT32_MAX;
  int64_t slots = d->slots > 0 ? d->slots : 1;
  int64_t rows = d->C < d->T ? d->C : d->T;
  if (d->T * d->D > most || 2 * d->T >= most || rows * d->F > most || d->N * d->P > most ||
      slots * d->P > most || 2 * d->P > most || d->B * d->H > most)
    hy_die("titans_scan",
           "B %lld H %lld T %lld D %lld F %lld: the GPU kernels take sizes per head "
           "below 2^31",
           (long long)d->B, (long long)d->H, (long long)d->T, (long long)d->D, (long long)d->F);
  scan_dims s;
  s.B = (int)d->B;
  s.H = (int)d->H;
  s.T = (int)d->T;
  s.D = (int)d->D;
  s.F = (int)d->F;
  /* A chunk longer than T makes no update, and its first group is all of [0, T) as with T + 1. */
  s.C = (int)(d->C <= d->T ? d->C : d->T + 1);
  s.N = (int)d->N;
  s.depth = (int)d->depth;
  s.P = (int)d->P;
  s.slots = (int)slots;
  return s;
}

float *scratch_for(const scan_dims &dm, bool backward) {
  size_t floats = (size_t)dm.B * dm.H * scratch_floats(dm, backward);
  return (float *)hy_arena_alloc_on(HY_CUDA, sizeof(float) * (floats ? floats : 1));
}

} // namespace

extern "C" void cuda_titans_scan_f32(const hy_titans_dims *dims, const float *q, const float *k,
                                     const float *v, const float *theta, const float *eta,
                                     const float *keep, const float *w1, const float *w2,
                                     const float *init, float *y, float *states, float *momenta,
                                     float *final) {
  if (dims->B * dims->H == 0) return;
  scan_dims dm = shape_of(dims);
  hy_arena_mark mark = hy_arena_get_mark();
  float *base = scratch_for(dm, false);
  scan_forward<<<(unsigned)(dm.B * dm.H), THREADS, 0, hy_cuda_stream()>>>(
      dm, q, k, v, theta, eta, keep, w1, w2, init, y, states, momenta, final, base);
  HY_CUDA_LAUNCHED(scan_forward);
  hy_arena_rewind(mark); /* the scratch is free for what is queued after */
}

extern "C" void cuda_titans_scan_backward_f32(
    const hy_titans_dims *dims, const float *q, const float *k, const float *v, const float *theta,
    const float *eta, const float *keep, const float *w1, const float *w2, const float *init,
    const float *states, const float *momenta, const float *gy, const float *gfinal, float *gq,
    float *gk, float *gv, float *gtheta, float *geta, float *gkeep, float *gw1, float *gw2,
    float *ginit, float *work) {
  if (dims->B * dims->H == 0) return;
  scan_dims dm = shape_of(dims);
  bool want_m0 = !init && (gw1 || gw2);
  float *per_seq = want_m0 ? work : nullptr;
  hy_arena_mark mark = hy_arena_get_mark();
  float *base = scratch_for(dm, true);
  scan_backward<<<(unsigned)(dm.B * dm.H), THREADS, 0, hy_cuda_stream()>>>(
      dm, q, k, v, theta, eta, keep, w1, w2, init, states, momenta, gy, gfinal, gq, gk, gv, gtheta,
      geta, gkeep, per_seq, ginit, base);
  HY_CUDA_LAUNCHED(scan_backward);
  if (want_m0) {
    reduce_m0<<<hy_cuda_blocks((int64_t)dm.H * dm.P), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(
        dm, per_seq, gw1, gw2);
    HY_CUDA_LAUNCHED(reduce_m0);
  }
  hy_arena_rewind(mark);
}
