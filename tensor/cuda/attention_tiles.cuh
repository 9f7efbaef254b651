/* The tiling of the fused causal attention kernels whose weights need no softmax normalization
 * pass of their own (sigmoid_attention.cu, softplus_attention.cu): the two backward kernels,
 * written once over a weight rule W, on the tiles of tiles.cuh.
 *
 * Layouts as on the CPU: q, k, v [B, T, H, D] rows by their strides (time stride >= D, last
 * stride 1), o and the gradients contiguous [B, T, H, D], per-row statistics [B, H, T]. Causal
 * only: T queries against their own T keys, query t sees keys s <= t.
 *
 * Inside a block, thread (ty, tx) = (tid / 16, tid % 16) owns the tile rows ty + TY i (i < RT) and
 * the score columns tx + 16 j; a row's 16 threads are one half-warp, so row maxima and sums are
 * shuffles. Its columns of a [*, D] output come in 16-byte chunks where D allows (cols<DP>). D is
 * padded to DP (16, 32, 64, 128 or 256) with zero columns in shared memory.
 *
 * A weight rule W gives, for query t and key j, from the unscaled score s = q_t . k_j and
 * dP = dO_t . v_j, the weight p of v_j in o_t and the loss's gradient ds with respect to s
 * (pair()), with what it keeps per query row (W::row, from row_of(b, h, t, valid); a row past T
 * is not valid and must give finite values). Then dV_j = sum_t p dO_t, dQ_t = sum_j ds k_j and
 * dK_j = sum_t ds q_t. */
#ifndef HYLA_CUDA_ATTENTION_TILES_CUH
#define HYLA_CUDA_ATTENTION_TILES_CUH

#include "tensor/cuda/common.cuh"
#include "tensor/cuda/limits.h"
#include "tensor/cuda/tiles.cuh"

#include <math.h>

namespace {

struct tile_shape {
  int T, H, D;
  int64_t qs[3], ks[3], vs[3]; /* strides over b, t, h */
};

/* A weight and a score gradient. */
struct weight_grad {
  float p, ds;
};

/* dQ: one block per (query tile, b, h), the tiles with the most keys first, walks the key tiles
 * its queries see, recomputing the weights' gradients dS from q, k and dP = dO v^T, and sums
 * gq += dS K. Shared memory: Q, dO [BR, DP+4], K, V [BC, DP+4], dS [BR, BC+16]. */
template <class W, int DP, int BR, int BC, int RT>
__global__ void __launch_bounds__(BR / RT * 16)
    tiles_backward_dq(tile_shape a, W w, const float *q, const float *k, const float *v,
                      const float *go, float *gq, bool vec4) {
  constexpr int TY = BR / RT, THREADS = TY * 16, CT = BC / 16, N = DP / 16, LD = DP + 4,
                LDP = BC + 16;
  extern __shared__ float4 shm[];
  float *Qs = reinterpret_cast<float *>(shm), *Gs = Qs + BR * LD, *Ks = Gs + BR * LD,
        *Vs = Ks + BC * LD, *Ss = Vs + BC * LD;
  const int ty = (int)threadIdx.x / 16, tx = (int)threadIdx.x % 16;
  const int b = (int)blockIdx.x / a.H, h = (int)blockIdx.x % a.H;
  const int i0 = (int)(gridDim.y - 1 - blockIdx.y) * BR, nq = min(BR, a.T - i0), j_end = i0 + nq;
  const int64_t ldg = (int64_t)a.H * a.D;
  const float *qb = q + b * a.qs[0] + h * a.qs[2], *kb = k + b * a.ks[0] + h * a.ks[2],
              *vb = v + b * a.vs[0] + h * a.vs[2];
  const float *gob = go + ((int64_t)b * a.T * a.H + h) * a.D;

  load_tile<BR, DP, THREADS>(Qs, LD, qb + i0 * a.qs[1], a.qs[1], nq, a.D, vec4);
  load_tile<BR, DP, THREADS>(Gs, LD, gob + i0 * ldg, ldg, nq, a.D, vec4);
  load_tile<BC, DP, THREADS>(Vs, LD, vb, a.vs[1], min(BC, a.T), a.D, vec4);
  cp_async_commit();
  load_tile<BC, DP, THREADS>(Ks, LD, kb, a.ks[1], min(BC, a.T), a.D, vec4);
  cp_async_commit();

  typename W::row rw[RT];
  float acc[RT][N];
#pragma unroll
  for (int i = 0; i < RT; i++) {
    int r = ty + TY * i;
    rw[i] = w.row_of(b, h, i0 + r, r < nq);
#pragma unroll
    for (int e = 0; e < N; e++) acc[i][e] = 0.f;
  }

  for (int j0 = 0; j0 < j_end; j0 += BC) {
    cp_async_wait<1>(); /* V (and Q, dO) */
    __syncthreads();
    float dp[RT][CT], s[RT][CT];
#pragma unroll
    for (int i = 0; i < RT; i++)
#pragma unroll
      for (int j = 0; j < CT; j++) dp[i][j] = s[i][j] = 0.f;
    product_abt<RT, CT, TY, DP>(dp, Gs, LD, Vs, LD, ty, tx);
    cp_async_wait<0>(); /* K */
    __syncthreads();
    product_abt<RT, CT, TY, DP>(s, Qs, LD, Ks, LD, ty, tx);

    bool mask = j0 + BC - 1 > i0; /* a key of the tile is after some query's position */
#pragma unroll
    for (int i = 0; i < RT; i++) {
      int t = i0 + ty + TY * i;
#pragma unroll
      for (int j = 0; j < CT; j++) {
        float ds = w.pair(rw[i], s[i][j], dp[i][j]).ds;
        if (mask && j0 + tx + 16 * j > t) ds = 0.f;
        Ss[(ty + TY * i) * LDP + tx + 16 * j] = ds;
      }
    }
    __syncthreads(); /* dS is written, V is read */
    if (j0 + BC < j_end)
      load_tile<BC, DP, THREADS>(Vs, LD, vb + (j0 + BC) * a.vs[1], a.vs[1], min(BC, a.T - j0 - BC),
                                 a.D, vec4);
    cp_async_commit();
    product_ab<RT, BC, TY, DP>(acc, Ss, LDP, Ks, LD, ty, tx);
    __syncthreads(); /* K and dS are read */
    if (j0 + BC < j_end)
      load_tile<BC, DP, THREADS>(Ks, LD, kb + (j0 + BC) * a.ks[1], a.ks[1], min(BC, a.T - j0 - BC),
                                 a.D, vec4);
    cp_async_commit();
  }

#pragma unroll
  for (int i = 0; i < RT; i++) {
    int r = ty + TY * i;
    if (r < nq)
      store_row<DP>(gq + ((b * (int64_t)a.T + i0 + r) * a.H + h) * a.D, acc[i], a.D, tx, vec4,
                    true);
  }
}

/* dK and dV: one block per (key tile, b, h) walks the query tiles that see its keys (from the
 * tile holding its first key to the end) and sums gv += P^T dO and gk += dS^T Q, with P^T and
 * dS^T computed key-major (the thread's rows are keys). Shared memory: K, V [BC, DP+4], Q, dO
 * [BR, DP+4], P^T, dS^T [BC, BR+16], then the query tile's BR rows of W::row. */
template <class W, int DP, int BC, int BR, int RT>
__global__ void __launch_bounds__(BC / RT * 16)
    tiles_backward_dkdv(tile_shape a, W w, const float *q, const float *k, const float *v,
                        const float *go, float *gk, float *gv, bool vec4) {
  constexpr int TY = BC / RT, THREADS = TY * 16, CT = BR / 16, N = DP / 16, LD = DP + 4,
                LDP = BR + 16;
  using row = typename W::row;
  extern __shared__ float4 shm[];
  float *Ks = reinterpret_cast<float *>(shm), *Vs = Ks + BC * LD, *Qs = Vs + BC * LD,
        *Gs = Qs + BR * LD, *Ps = Gs + BR * LD, *Ss = Ps + BC * LDP;
  row *Rs = reinterpret_cast<row *>(Ss + BC * LDP);
  const int ty = (int)threadIdx.x / 16, tx = (int)threadIdx.x % 16;
  const int b = (int)blockIdx.x / a.H, h = (int)blockIdx.x % a.H;
  const int j0 = (int)blockIdx.y * BC, nk = min(BC, a.T - j0);
  const int i_begin = j0 / BR * BR; /* queries before j0 see none of the tile's keys */
  const int64_t ldg = (int64_t)a.H * a.D;
  const float *qb = q + b * a.qs[0] + h * a.qs[2], *kb = k + b * a.ks[0] + h * a.ks[2],
              *vb = v + b * a.vs[0] + h * a.vs[2];
  const float *gob = go + ((int64_t)b * a.T * a.H + h) * a.D;

  load_tile<BC, DP, THREADS>(Ks, LD, kb + j0 * a.ks[1], a.ks[1], nk, a.D, vec4);
  load_tile<BC, DP, THREADS>(Vs, LD, vb + j0 * a.vs[1], a.vs[1], nk, a.D, vec4);

  float acc_k[RT][N], acc_v[RT][N];
#pragma unroll
  for (int i = 0; i < RT; i++)
#pragma unroll
    for (int e = 0; e < N; e++) acc_k[i][e] = acc_v[i][e] = 0.f;

  for (int i0 = i_begin; i0 < a.T; i0 += BR) {
    const int nq = min(BR, a.T - i0);
    load_tile<BR, DP, THREADS>(Qs, LD, qb + i0 * a.qs[1], a.qs[1], nq, a.D, vec4);
    load_tile<BR, DP, THREADS>(Gs, LD, gob + i0 * ldg, ldg, nq, a.D, vec4);
    cp_async_commit();
    for (int c = (int)threadIdx.x; c < BR; c += THREADS) Rs[c] = w.row_of(b, h, i0 + c, c < nq);
    cp_async_wait<0>();
    __syncthreads();

    float s[RT][CT], dp[RT][CT];
#pragma unroll
    for (int i = 0; i < RT; i++)
#pragma unroll
      for (int j = 0; j < CT; j++) s[i][j] = dp[i][j] = 0.f;
    product_abt<RT, CT, TY, DP>(s, Ks, LD, Qs, LD, ty, tx);
    product_abt<RT, CT, TY, DP>(dp, Vs, LD, Gs, LD, ty, tx);

    /* Some query of the tile is past T, or before a key of the tile. */
    bool mask = nq < BR || j0 + BC - 1 > i0;
#pragma unroll
    for (int i = 0; i < RT; i++) {
      int j = j0 + ty + TY * i;
#pragma unroll
      for (int c = 0; c < CT; c++) {
        int col = tx + 16 * c;
        weight_grad x = w.pair(Rs[col], s[i][c], dp[i][c]);
        if (mask && (col >= nq || j > i0 + col)) x.p = x.ds = 0.f;
        Ps[(ty + TY * i) * LDP + col] = x.p;
        Ss[(ty + TY * i) * LDP + col] = x.ds;
      }
    }
    __syncthreads();
    product_ab<RT, BR, TY, DP>(acc_v, Ps, LDP, Gs, LD, ty, tx);
    product_ab<RT, BR, TY, DP>(acc_k, Ss, LDP, Qs, LD, ty, tx);
    __syncthreads(); /* Q, dO, P, dS and the rows are read */
  }

#pragma unroll
  for (int i = 0; i < RT; i++) {
    int r = ty + TY * i;
    if (r >= nk) continue;
    int64_t off = ((b * (int64_t)a.T + j0 + r) * a.H + h) * a.D;
    if (gk) store_row<DP>(gk + off, acc_k[i], a.D, tx, vec4, true);
    if (gv) store_row<DP>(gv + off, acc_v[i], a.D, tx, vec4, true);
  }
}

/* What a launch needs besides the pointers. */
struct tile_launch {
  tile_shape a;
  int B;
  bool vec4;
  const char *op;
};

/* Blocks of `rows` rows over n rows, as the grid's y (at most 65535). */
inline unsigned tile_count(const tile_launch &L, int64_t n, int rows) {
  int64_t t = (n + rows - 1) / rows;
  if (t > 65535)
    hy_die(L.op, "%lld rows in tiles of %d: more than 65535 tiles", (long long)n, rows);
  return (unsigned)t;
}

template <class W, int DP, int BR, int BC, int RT>
void run_backward_dq(const tile_launch &L, const W &w, const float *q, const float *k,
                     const float *v, const float *go, float *gq) {
  static bool done;
  auto kernel = tiles_backward_dq<W, DP, BR, BC, RT>;
  size_t bytes = sizeof(float) * (size_t)(2 * BR * (DP + 4) + 2 * BC * (DP + 4) + BR * (BC + 16));
  hy_allow_shared(kernel, bytes, &done);
  dim3 grid((unsigned)(L.B * L.a.H), tile_count(L, L.a.T, BR));
  kernel<<<grid, BR / RT * 16, bytes, hy_cuda_stream()>>>(L.a, w, q, k, v, go, gq, L.vec4);
  HY_CUDA_LAUNCHED(tiles_backward_dq);
}

template <class W, int DP, int BC, int BR, int RT>
void run_backward_dkdv(const tile_launch &L, const W &w, const float *q, const float *k,
                       const float *v, const float *go, float *gk, float *gv) {
  static bool done;
  auto kernel = tiles_backward_dkdv<W, DP, BC, BR, RT>;
  size_t bytes =
      sizeof(float) * (size_t)(2 * BC * (DP + 4) + 2 * BR * (DP + 4) + 2 * BC * (BR + 16)) +
      sizeof(typename W::row) * BR;
  hy_allow_shared(kernel, bytes, &done);
  dim3 grid((unsigned)(L.B * L.a.H), tile_count(L, L.a.T, BC));
  kernel<<<grid, BC / RT * 16, bytes, hy_cuda_stream()>>>(L.a, w, q, k, v, go, gk, gv, L.vec4);
  HY_CUDA_LAUNCHED(tiles_backward_dkdv);
}

/* dK and dV first, then dQ: where q, k and v are one tensor their gradients are one buffer, and
 * the kernels add to it in stream order. */
template <class W, int DP>
void tiles_backward(const tile_launch &L, const W &w, const float *q, const float *k,
                    const float *v, const float *go, float *gq, float *gk, float *gv) {
  using c = tile_cfg<DP>;
  if (gk || gv) run_backward_dkdv<W, DP, c::K_BC, c::K_BR, c::K_RT>(L, w, q, k, v, go, gk, gv);
  if (gq) run_backward_dq<W, DP, c::Q_BR, c::Q_BC, c::Q_RT>(L, w, q, k, v, go, gq);
}

/* The backward for any head size, padded to the next specialized one. */
template <class W>
void tiles_backward_any(int DP, const tile_launch &L, const W &w, const float *q, const float *k,
                        const float *v, const float *go, float *gq, float *gk, float *gv) {
  switch (DP) {
  case 16: tiles_backward<W, 16>(L, w, q, k, v, go, gq, gk, gv); break;
  case 32: tiles_backward<W, 32>(L, w, q, k, v, go, gq, gk, gv); break;
  case 64: tiles_backward<W, 64>(L, w, q, k, v, go, gq, gk, gv); break;
  case 128: tiles_backward<W, 128>(L, w, q, k, v, go, gq, gk, gv); break;
  default: tiles_backward<W, 256>(L, w, q, k, v, go, gq, gk, gv); break;
  }
}

inline bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

/* Rows of x can be copied in 16-byte pieces. */
inline bool rows_vec4(const void *x, const int64_t *stride, int64_t D) {
  return D % 4 == 0 && aligned16(x) && stride[0] % 4 == 0 && stride[1] % 4 == 0 &&
         stride[2] % 4 == 0;
}

/* D padded to the head size the kernels specialize. */
inline int tile_padded(const char *op, int64_t D) {
  if (D < 1 || D > HY_CUDA_ATTN_HEAD_MAX)
    hy_die(op, "head size D = %lld: the GPU kernels take 1..%d", (long long)D,
           HY_CUDA_ATTN_HEAD_MAX);
  return D <= 16 ? 16 : D <= 32 ? 32 : D <= 64 ? 64 : D <= 128 ? 128 : 256;
}

/* The launch of causal attention over dims (Tk = T, no offset or window) with outputs o and
 * every gradient contiguous; vec4 where every row allows 16-byte copies. */
inline tile_launch tile_launch_of(const char *op, const hy_attn_dims *d, const void *q,
                                  const void *k, const void *v, const void *o) {
  if (d->T > INT32_MAX || d->B * d->H > INT32_MAX)
    hy_die(op, "sizes B %lld, H %lld, T %lld too large for the GPU kernels", (long long)d->B,
           (long long)d->H, (long long)d->T);
  tile_launch L;
  L.a.T = (int)d->T;
  L.a.H = (int)d->H;
  L.a.D = (int)d->D;
  for (int i = 0; i < 3; i++) {
    L.a.qs[i] = d->q_stride[i];
    L.a.ks[i] = d->k_stride[i];
    L.a.vs[i] = d->v_stride[i];
  }
  L.B = (int)d->B;
  L.op = op;
  int64_t contiguous[3] = {d->T * d->H * d->D, d->H * d->D, d->D};
  L.vec4 = rows_vec4(q, d->q_stride, d->D) && rows_vec4(k, d->k_stride, d->D) &&
           rows_vec4(v, d->v_stride, d->D) && rows_vec4(o, contiguous, d->D);
  return L;
}

} // namespace

#endif
