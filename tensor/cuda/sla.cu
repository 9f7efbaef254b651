#include "tensor/cuda/common.cuh"
#include "tensor/cuda/limits.h"
#include "tensor/cuda/tiles.cuh"
extern "C" {
#include "tensor/arena.h"
#include "tensor/sla_types.h"
}

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Causal sparse-linear attention (SLA) on the GPU in f32: the twin of tensor/cpu/sla.c, with its
 * layouts (q, k, v rows by their strides; o and go [B, T, H, 2 D]: o_s then o_l; the gradients
 * contiguous, [B, T, H, D] for q and [B, Tk, H, D] for k and v; lse [B, H, T]; states [B, H, nbk,
 * D (D + 1)] and dstates [B, H, nb, D (D + 1)], per head the D x D blocks, then the D-vectors).
 * The T queries may sit at a later position q0 = first * block of the Tk keys' sequence (a
 * sequence-parallel rank's slice): query block i (local, of nb) is block first + i of the
 * sequence, key blocks go from 0 to nbk - 1 = first + nb - 1, and rows and blocks are compared by
 * their positions in the sequence.
 *
 * Selection: block means in double (a thread per (b, h, block, d), rows summed in order), then a
 * block per (b, h, query block) scores the earlier key blocks in double with unfused multiplies
 * and adds in the CPU's order, so the scores are the CPU's bit for bit, and gives each key block
 * its rank (higher score first, then the lower block) by counting: the CPU's sorted order.
 *
 * Softmax branch: tiles.cuh's tiles of 32 queries and 32 keys. Forward and dQ: a block per
 * (b, h, query tile) walks the key tiles of its block's critical key blocks; dK and dV: a block
 * per (b, h, key tile) walks the query tiles of the query blocks for which its block is critical.
 *
 * Linear branch: phi of q and k into scratch [B, H, rows, D] (a warp per row); the key block
 * states KV_j, z_j (a thread per entry, summing the block's rows in order; the backward computes
 * them again); per query block the sums S_i, z_i of its marginal blocks' states (a thread per
 * entry, blocks in increasing order); then a block per (b, h, 16 rows of a query block) for the
 * output. The backward computes dnum and dden per row, dS_i and dz_i like the states, their sums
 * G_j, g_j per key block down the class column, and the key rows' gradients like the query
 * rows'.
 *
 * Every output element has one owner and every sum a fixed order: no atomics, deterministic.
 * Scratch lives in the step arena until the kernels that use it are queued. */

namespace {

constexpr float LOG2E = 1.44269504088896340736f;
constexpr float LN2 = 0.69314718055994530942f;
constexpr float SLA_EPS = 1e-5f;

/* The softmax branch's tiles: TB queries x TB keys, RT rows per thread, THREADS per block. */
constexpr int TB = 32, RT = 2, TY = TB / RT, THREADS = TY * 16;
static_assert(TB == HY_CUDA_SLA_ROWS, "tensor/cuda/limits.h");
/* Rows per block of the linear branch's row kernels, and their threads. */
constexpr int LR = 16, LTHREADS = 256;

struct stride3 {
  int64_t b, t, h;
};

struct sla_shape {
  int B, T, H, D, block, nb, fm;
  int Tk, kr, nbk;    /* key rows (of the gradients' layout), those read (of nbk blocks), blocks */
  int first, q0;      /* the first query block of the sequence, and its first row */
  int qtiles, ktiles; /* query and key tiles of TB per block */
  stride3 qs, ks, vs;
  float scale, scale2; /* scale, scale * log2(e) */
};

__device__ __forceinline__ const float *row_of(const float *x, stride3 s, int b, int t, int h) {
  return x + b * s.b + (int64_t)t * s.t + h * s.h;
}

/* The class row of (local) query block i of head bh: nbk entries. */
__device__ __forceinline__ const int32_t *class_row(const sla_shape &s, const int32_t *classes,
                                                    int64_t bh, int i) {
  return classes + (bh * s.nb + i) * s.nbk;
}

/* Query block i ranks some earlier block marginal. */
__device__ bool row_has_marginal(const sla_shape &s, const int32_t *classes, int64_t bh, int i) {
  const int32_t *row = class_row(s, classes, bh, i);
  for (int j = 0; j < s.first + i; j++)
    if (row[j] == HY_SLA_MARGINAL) return true;
  return false;
}

/* The first local query block after key block j. */
__device__ __forceinline__ int after_block(const sla_shape &s, int j) {
  return max(0, j + 1 - s.first);
}

/* Key block j is marginal for some later query block. */
__device__ bool column_has_marginal(const sla_shape &s, const int32_t *classes, int64_t bh, int j) {
  const int32_t *col = classes + bh * s.nb * s.nbk + j;
  for (int i = after_block(s, j); i < s.nb; i++)
    if (col[(int64_t)i * s.nbk] == HY_SLA_MARGINAL) return true;
  return false;
}

/* Entry x < D D (the D x D block) or D D + d (the vector) of block y's state of head bh, in the
 * layout of n blocks per head (states: nbk; dstates: nb). */
__device__ __forceinline__ int64_t state_at(const sla_shape &s, int n, int64_t bh, int y,
                                            int64_t x) {
  int64_t DD = (int64_t)s.D * s.D, head = bh * n * (DD + s.D);
  return head + (x < DD ? y * DD + x : n * DD + (int64_t)y * s.D + (x - DD));
}

__device__ __forceinline__ float warp_all_sum(float x) {
#pragma unroll
  for (int m = 16; m >= 1; m /= 2) x += __shfl_xor_sync(0xffffffffu, x, m);
  return x;
}

__device__ __forceinline__ float warp_all_max(float x) {
#pragma unroll
  for (int m = 16; m >= 1; m /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, m));
  return x;
}

/* ---- the block selection ---- */

/* pooled[bh, slot + i, d] (per_head slots a head) = the mean of x's rows in block i of n blocks
 * of `rows` rows, in double, summed in row order. */
__global__ void pool_blocks(sla_shape s, const float *x, stride3 xs, int rows, int n, int per_head,
                            int slot, double *pooled) {
  int64_t count = (int64_t)s.B * s.H * n * s.D;
  HY_GRID_STRIDE(e, count) {
    int d = (int)(e % s.D);
    int64_t r = e / s.D, bh = r / n;
    int i = (int)(r % n), b = (int)(bh / s.H), h = (int)(bh % s.H);
    int t0 = i * s.block, m = min(s.block, rows - t0);
    const float *p = row_of(x, xs, b, t0, h) + d;
    double sum = 0;
    for (int t = 0; t < m; t++) sum += (double)p[(int64_t)t * xs.t];
    pooled[(bh * per_head + slot + i) * s.D + d] = sum / (double)m;
  }
}

/* The counts per query block, passed by value where they fit (no copy, no host sync). */
constexpr int PARAM_BLOCKS = 256;
struct counts_param {
  int32_t critical[PARAM_BLOCKS], negligible[PARAM_BLOCKS];
};

/* One block per (bh, query block i), block g = first + i of the sequence: scores of the earlier
 * key blocks (pooled q of block g - 1, slot i of pq [B H, nb + 1, D] whose slot 0 is the block
 * before the queries, against pooled k of block j, multiplies and adds unfused as the CPU
 * computes them; NaN ranks last), then each block's rank among them and its class. Shared memory:
 * the scores [nbk]. */
__global__ void rank_blocks(sla_shape s, const double *pq, const double *pk, counts_param cp,
                            const int64_t *counts, int32_t *classes) {
  extern __shared__ double score[];
  int64_t bh = (int64_t)blockIdx.x / s.nb;
  int i = (int)((int64_t)blockIdx.x % s.nb), g = s.first + i;
  const double *qi = pq + (bh * (s.nb + 1) + i) * s.D, *kh = pk + bh * s.nbk * s.D;
  for (int j = (int)threadIdx.x; j < g; j += (int)blockDim.x) {
    const double *kj = kh + (int64_t)j * s.D;
    double acc = 0;
    for (int d = 0; d < s.D; d++) acc = __dadd_rn(acc, __dmul_rn(qi[d], kj[d]));
    score[j] = acc == acc ? acc : -INFINITY;
  }
  __syncthreads();
  int64_t nc = counts ? counts[i] : cp.critical[i],
          nn = counts ? counts[s.nb + i] : cp.negligible[i];
  int32_t *row = classes + (bh * s.nb + i) * s.nbk;
  for (int j = (int)threadIdx.x; j < s.nbk; j += (int)blockDim.x) {
    int32_t c;
    if (j > g) {
      c = HY_SLA_FUTURE;
    } else if (j == g) {
      c = HY_SLA_CRITICAL;
    } else {
      double sj = score[j];
      int64_t rank = 0;
      for (int x = 0; x < g; x++) rank += score[x] > sj || (score[x] == sj && x < j);
      c = rank < nc ? HY_SLA_CRITICAL : rank >= g - nn ? HY_SLA_NEGLIGIBLE : HY_SLA_MARGINAL;
    }
    row[j] = c;
  }
}

/* ---- the softmax branch ---- */

/* The tile of grid row y over `rows` rows in blocks of `tiles` tiles: block i, tile start t0
 * and rows n (n <= 0: the block has fewer tiles). Queries: rows T, local blocks and rows; keys:
 * rows Tk, the sequence's. */
struct tile_pos {
  int i, t0, n;
};

__device__ __forceinline__ tile_pos tile_of(const sla_shape &s, int y, int rows, int tiles) {
  tile_pos p;
  p.i = y / tiles;
  int start = p.i * s.block, end = min(start + s.block, rows);
  p.t0 = start + (y % tiles) * TB;
  p.n = min(TB, end - p.t0);
  return p;
}

/* Forward: o_s = softmax(scale q k^T) v over the critical key blocks (causal inside the diagonal
 * one), lse = the rows' log-sum-exps. Grid (B H, query tiles), the later query blocks (more
 * critical blocks) first. Shared memory: Q, K, V [TB, DP+4], P [TB, TB+16]. */
template <int DP>
__global__ void __launch_bounds__(THREADS)
    sparse_forward(sla_shape s, const int32_t *classes, const float *q, const float *k,
                   const float *v, float *o, float *lse, bool vec4) {
  constexpr int CT = TB / 16, N = DP / 16, LD = DP + 4, LDP = TB + 16;
  extern __shared__ float4 shm[];
  float *Qs = reinterpret_cast<float *>(shm), *Ks = Qs + TB * LD, *Vs = Ks + TB * LD,
        *Ps = Vs + TB * LD;
  const int ty = (int)threadIdx.x / 16, tx = (int)threadIdx.x % 16;
  const int b = (int)blockIdx.x / s.H, h = (int)blockIdx.x % s.H;
  const int64_t bh = blockIdx.x;
  const tile_pos qt = tile_of(s, (int)(gridDim.y - 1 - blockIdx.y), s.T, s.qtiles);
  if (qt.n <= 0) return;
  const int gq0 = s.q0 + qt.t0, q_last = gq0 + qt.n - 1; /* the sequence's positions */
  const int32_t *row = class_row(s, classes, bh, qt.i);
  const float *qb = row_of(q, s.qs, b, 0, h), *kb = row_of(k, s.ks, b, 0, h),
              *vb = row_of(v, s.vs, b, 0, h);

  load_tile<TB, DP, THREADS>(Qs, LD, qb + (int64_t)qt.t0 * s.qs.t, s.qs.t, qt.n, s.D, vec4);
  cp_async_commit();

  float m[RT], l[RT], acc[RT][N];
#pragma unroll
  for (int i = 0; i < RT; i++) {
    m[i] = -INFINITY;
    l[i] = 0.f;
#pragma unroll
    for (int e = 0; e < N; e++) acc[i][e] = 0.f;
  }

  for (int j = 0; j <= s.first + qt.i; j++) {
    if (row[j] != HY_SLA_CRITICAL) continue;
    const int k_end = min((j + 1) * s.block, s.kr);
    for (int k0 = j * s.block; k0 < k_end && k0 <= q_last; k0 += TB) {
      const int nk = min(TB, k_end - k0);
      __syncthreads(); /* the last tile's K, V and P are read */
      load_tile<TB, DP, THREADS>(Ks, LD, kb + (int64_t)k0 * s.ks.t, s.ks.t, nk, s.D, vec4);
      load_tile<TB, DP, THREADS>(Vs, LD, vb + (int64_t)k0 * s.vs.t, s.vs.t, nk, s.D, vec4);
      cp_async_commit();
      cp_async_wait<0>();
      __syncthreads();

      float sc[RT][CT];
#pragma unroll
      for (int i = 0; i < RT; i++)
#pragma unroll
        for (int c = 0; c < CT; c++) sc[i][c] = 0.f;
      product_abt<RT, CT, TY, DP>(sc, Qs, LD, Ks, LD, ty, tx);

      const bool mask = nk < TB || k0 + TB - 1 > gq0;
#pragma unroll
      for (int i = 0; i < RT; i++) {
        const int gi = gq0 + ty + TY * i;
        float mx = -INFINITY;
#pragma unroll
        for (int c = 0; c < CT; c++) {
          const int col = tx + 16 * c;
          float x = sc[i][c] * s.scale2;
          if (mask && (col >= nk || k0 + col > gi)) x = -INFINITY;
          sc[i][c] = x;
          mx = fmaxf(mx, x);
        }
        const float m_new = fmaxf(m[i], row_max(mx));
        const float m_use = m_new == -INFINITY ? 0.f : m_new; /* no key of the row yet */
        const float alpha = exp2f(m[i] - m_use);
        float sum = 0.f;
#pragma unroll
        for (int c = 0; c < CT; c++) {
          const float p = exp2f(sc[i][c] - m_use);
          sum += p;
          Ps[(ty + TY * i) * LDP + tx + 16 * c] = p;
        }
        m[i] = m_new;
        l[i] = l[i] * alpha + sum; /* this thread's columns; summed over the row at the end */
#pragma unroll
        for (int e = 0; e < N; e++) acc[i][e] *= alpha;
      }
      __syncthreads(); /* P is written */
      product_ab<RT, TB, TY, DP>(acc, Ps, LDP, Vs, LD, ty, tx);
    }
  }

#pragma unroll
  for (int i = 0; i < RT; i++) {
    const float sum = row_sum(l[i]);
    const int r = ty + TY * i;
    if (r >= qt.n) continue;
    const float inv = 1.f / sum;
#pragma unroll
    for (int e = 0; e < N; e++) acc[i][e] *= inv;
    const int64_t t = qt.t0 + r;
    store_row<DP>(o + ((b * (int64_t)s.T + t) * s.H + h) * 2 * s.D, acc[i], s.D, tx, vec4, false);
    if (tx == 0) lse[bh * s.T + t] = m[i] * LN2 + logf(sum);
  }
}

/* delta[bh, t] = go_s . o_s of row (b, t, h): a warp per row. */
__global__ void softmax_delta(sla_shape s, const float *o, const float *go, float *delta) {
  const int lane = (int)threadIdx.x % 32;
  const int64_t rows = (int64_t)s.B * s.T * s.H;
  const int64_t w0 = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32,
                nw = (int64_t)gridDim.x * blockDim.x / 32;
  for (int64_t r = w0; r < rows; r += nw) {
    const float *x = o + r * 2 * s.D, *g = go + r * 2 * s.D;
    float sum = 0.f;
    for (int d = lane; d < s.D; d += 32) sum = fmaf(x[d], g[d], sum);
    sum = warp_all_sum(sum);
    if (lane == 0) {
      const int64_t bt = r / s.H, b = bt / s.T, t = bt % s.T, h = r % s.H;
      delta[(b * s.H + h) * s.T + t] = sum;
    }
  }
}

/* dQ: a block per (b, h, query tile) walks the key tiles of the critical blocks, recomputing
 * P = exp(scale q k^T - lse) and dS = scale P (dO_s v^T - delta), and adds dS K to gq. Shared
 * memory: Q, dO_s, K, V [TB, DP+4], dS [TB, TB+16]. */
template <int DP>
__global__ void __launch_bounds__(THREADS)
    sparse_backward_dq(sla_shape s, const int32_t *classes, const float *q, const float *k,
                       const float *v, const float *go, const float *lse, const float *delta,
                       float *gq, bool vec4) {
  constexpr int CT = TB / 16, N = DP / 16, LD = DP + 4, LDP = TB + 16;
  extern __shared__ float4 shm[];
  float *Qs = reinterpret_cast<float *>(shm), *Gs = Qs + TB * LD, *Ks = Gs + TB * LD,
        *Vs = Ks + TB * LD, *Ss = Vs + TB * LD;
  const int ty = (int)threadIdx.x / 16, tx = (int)threadIdx.x % 16;
  const int b = (int)blockIdx.x / s.H, h = (int)blockIdx.x % s.H;
  const int64_t bh = blockIdx.x, ldg = 2 * (int64_t)s.H * s.D;
  const tile_pos qt = tile_of(s, (int)(gridDim.y - 1 - blockIdx.y), s.T, s.qtiles);
  if (qt.n <= 0) return;
  const int gq0 = s.q0 + qt.t0, q_last = gq0 + qt.n - 1; /* the sequence's positions */
  const int32_t *row = class_row(s, classes, bh, qt.i);
  const float *qb = row_of(q, s.qs, b, 0, h), *kb = row_of(k, s.ks, b, 0, h),
              *vb = row_of(v, s.vs, b, 0, h);
  const float *gob = go + ((int64_t)b * s.T * s.H + h) * 2 * s.D;

  load_tile<TB, DP, THREADS>(Qs, LD, qb + (int64_t)qt.t0 * s.qs.t, s.qs.t, qt.n, s.D, vec4);
  load_tile<TB, DP, THREADS>(Gs, LD, gob + qt.t0 * ldg, ldg, qt.n, s.D, vec4);
  cp_async_commit();

  float lse2[RT], dl[RT], acc[RT][N];
#pragma unroll
  for (int i = 0; i < RT; i++) {
    const int r = ty + TY * i;
    lse2[i] = r < qt.n ? lse[bh * s.T + qt.t0 + r] * LOG2E : 0.f;
    dl[i] = r < qt.n ? delta[bh * s.T + qt.t0 + r] : 0.f;
#pragma unroll
    for (int e = 0; e < N; e++) acc[i][e] = 0.f;
  }

  for (int j = 0; j <= s.first + qt.i; j++) {
    if (row[j] != HY_SLA_CRITICAL) continue;
    const int k_end = min((j + 1) * s.block, s.kr);
    for (int k0 = j * s.block; k0 < k_end && k0 <= q_last; k0 += TB) {
      const int nk = min(TB, k_end - k0);
      __syncthreads(); /* the last tile's K and dS are read */
      load_tile<TB, DP, THREADS>(Ks, LD, kb + (int64_t)k0 * s.ks.t, s.ks.t, nk, s.D, vec4);
      load_tile<TB, DP, THREADS>(Vs, LD, vb + (int64_t)k0 * s.vs.t, s.vs.t, nk, s.D, vec4);
      cp_async_commit();
      cp_async_wait<0>();
      __syncthreads();

      float dp[RT][CT], sc[RT][CT];
#pragma unroll
      for (int i = 0; i < RT; i++)
#pragma unroll
        for (int c = 0; c < CT; c++) dp[i][c] = sc[i][c] = 0.f;
      product_abt<RT, CT, TY, DP>(dp, Gs, LD, Vs, LD, ty, tx);
      product_abt<RT, CT, TY, DP>(sc, Qs, LD, Ks, LD, ty, tx);

      const bool mask = nk < TB || k0 + TB - 1 > gq0;
#pragma unroll
      for (int i = 0; i < RT; i++) {
        const int gi = gq0 + ty + TY * i;
#pragma unroll
        for (int c = 0; c < CT; c++) {
          const int col = tx + 16 * c;
          float p = exp2f(sc[i][c] * s.scale2 - lse2[i]);
          if (mask && (col >= nk || k0 + col > gi)) p = 0.f;
          Ss[(ty + TY * i) * LDP + col] = s.scale * p * (dp[i][c] - dl[i]);
        }
      }
      __syncthreads(); /* dS is written */
      product_ab<RT, TB, TY, DP>(acc, Ss, LDP, Ks, LD, ty, tx);
    }
  }

#pragma unroll
  for (int i = 0; i < RT; i++) {
    const int r = ty + TY * i;
    if (r < qt.n)
      store_row<DP>(gq + ((b * (int64_t)s.T + qt.t0 + r) * s.H + h) * s.D, acc[i], s.D, tx, vec4,
                    true);
  }
}

/* dK and dV: a block per (b, h, key tile) walks the query tiles of the query blocks for which its
 * block is critical and adds P^T dO_s to gv and dS^T Q to gk, with P^T and dS^T computed
 * key-major (the thread's rows are keys). Shared memory: K, V, Q, dO_s [TB, DP+4], P^T, dS^T
 * [TB, TB+16], lse and delta [TB]. */
template <int DP>
__global__ void __launch_bounds__(THREADS)
    sparse_backward_dkdv(sla_shape s, const int32_t *classes, const float *q, const float *k,
                         const float *v, const float *go, const float *lse, const float *delta,
                         float *gk, float *gv, bool vec4) {
  constexpr int CT = TB / 16, N = DP / 16, LD = DP + 4, LDP = TB + 16;
  extern __shared__ float4 shm[];
  float *Ks = reinterpret_cast<float *>(shm), *Vs = Ks + TB * LD, *Qs = Vs + TB * LD,
        *Gs = Qs + TB * LD, *Ps = Gs + TB * LD, *Ss = Ps + TB * LDP, *Ls = Ss + TB * LDP,
        *Ds = Ls + TB;
  const int ty = (int)threadIdx.x / 16, tx = (int)threadIdx.x % 16;
  const int b = (int)blockIdx.x / s.H, h = (int)blockIdx.x % s.H;
  const int64_t bh = blockIdx.x, ldg = 2 * (int64_t)s.H * s.D;
  const tile_pos kt = tile_of(s, (int)blockIdx.y, s.kr, s.ktiles);
  if (kt.n <= 0) return;
  const int j = kt.i, k0 = kt.t0, nk = kt.n;
  const int32_t *col = classes + bh * s.nb * s.nbk + j; /* column j: rows nbk apart */
  const float *qb = row_of(q, s.qs, b, 0, h), *kb = row_of(k, s.ks, b, 0, h),
              *vb = row_of(v, s.vs, b, 0, h);
  const float *gob = go + ((int64_t)b * s.T * s.H + h) * 2 * s.D;
  const float *lse_bh = lse + bh * s.T, *delta_bh = delta + bh * s.T;

  load_tile<TB, DP, THREADS>(Ks, LD, kb + (int64_t)k0 * s.ks.t, s.ks.t, nk, s.D, vec4);
  load_tile<TB, DP, THREADS>(Vs, LD, vb + (int64_t)k0 * s.vs.t, s.vs.t, nk, s.D, vec4);
  cp_async_commit();

  float acc_k[RT][N], acc_v[RT][N];
#pragma unroll
  for (int i = 0; i < RT; i++)
#pragma unroll
    for (int e = 0; e < N; e++) acc_k[i][e] = acc_v[i][e] = 0.f;

  for (int i = max(0, j - s.first); i < s.nb; i++) { /* local query blocks, from block j on */
    if (col[(int64_t)i * s.nbk] != HY_SLA_CRITICAL) continue;
    const int q_end = min((i + 1) * s.block, s.T);
    for (int q0 = i * s.block; q0 < q_end; q0 += TB) {
      const int nq = min(TB, q_end - q0), gq0 = s.q0 + q0;
      if (gq0 + nq - 1 < k0) continue; /* every query of the tile before every key */
      __syncthreads();                 /* the last tile's Q, dO, P, dS are read */
      load_tile<TB, DP, THREADS>(Qs, LD, qb + (int64_t)q0 * s.qs.t, s.qs.t, nq, s.D, vec4);
      load_tile<TB, DP, THREADS>(Gs, LD, gob + q0 * ldg, ldg, nq, s.D, vec4);
      load_row<TB, THREADS>(Ls, lse_bh + q0, nq);
      load_row<TB, THREADS>(Ds, delta_bh + q0, nq);
      cp_async_commit();
      cp_async_wait<0>();
      __syncthreads();

      float sc[RT][CT], dp[RT][CT];
#pragma unroll
      for (int i2 = 0; i2 < RT; i2++)
#pragma unroll
        for (int c = 0; c < CT; c++) sc[i2][c] = dp[i2][c] = 0.f;
      product_abt<RT, CT, TY, DP>(sc, Ks, LD, Qs, LD, ty, tx);
      product_abt<RT, CT, TY, DP>(dp, Vs, LD, Gs, LD, ty, tx);

      const bool mask = nq < TB || k0 + TB - 1 > gq0;
#pragma unroll
      for (int i2 = 0; i2 < RT; i2++) {
        const int key = k0 + ty + TY * i2;
#pragma unroll
        for (int c = 0; c < CT; c++) {
          const int qc = tx + 16 * c;
          float p = exp2f(sc[i2][c] * s.scale2 - Ls[qc] * LOG2E);
          if (mask && (qc >= nq || key > gq0 + qc)) p = 0.f;
          Ps[(ty + TY * i2) * LDP + qc] = p;
          Ss[(ty + TY * i2) * LDP + qc] = s.scale * p * (dp[i2][c] - Ds[qc]);
        }
      }
      __syncthreads(); /* P^T and dS^T are written */
      product_ab<RT, TB, TY, DP>(acc_v, Ps, LDP, Gs, LD, ty, tx);
      product_ab<RT, TB, TY, DP>(acc_k, Ss, LDP, Qs, LD, ty, tx);
    }
  }

#pragma unroll
  for (int i = 0; i < RT; i++) {
    const int r = ty + TY * i;
    if (r >= nk) continue;
    const int64_t off = ((b * (int64_t)s.Tk + k0 + r) * s.H + h) * s.D;
    if (gk) store_row<DP>(gk + off, acc_k[i], s.D, tx, vec4, true);
    if (gv) store_row<DP>(gv + off, acc_v[i], s.D, tx, vec4, true);
  }
}

/* ---- the linear branch ---- */

/* y = phi(x) for one row of D, by one warp (each lane its columns). */
__device__ void phi_row(int fm, int D, const float *x, float *y, int lane) {
  if (fm == HY_SLA_PHI_SOFTMAX) {
    float mx = -INFINITY;
    for (int d = lane; d < D; d += 32) mx = fmaxf(mx, x[d]);
    mx = warp_all_max(mx);
    float sum = 0.f;
    for (int d = lane; d < D; d += 32) {
      const float e = expf(x[d] - mx);
      y[d] = e;
      sum += e;
    }
    const float inv = 1.f / warp_all_sum(sum);
    for (int d = lane; d < D; d += 32) y[d] *= inv; /* the lane's own writes */
  } else if (fm == HY_SLA_PHI_ELU) {
    for (int d = lane; d < D; d += 32) y[d] = x[d] > 0.f ? x[d] + 1.f : expf(x[d]);
  } else {
    for (int d = lane; d < D; d += 32) y[d] = x[d] > 0.f ? x[d] : 0.f;
  }
}

/* f[bh, t, :] = phi(x row (b, t, h)) for the first `rows` rows of each head (f [B, H, rows, D]):
 * a warp per row. */
__global__ void phi_rows(sla_shape s, const float *x, stride3 xs, int rows, float *f) {
  const int lane = (int)threadIdx.x % 32;
  const int64_t n = (int64_t)s.B * s.H * rows;
  const int64_t w0 = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32,
                nw = (int64_t)gridDim.x * blockDim.x / 32;
  for (int64_t r = w0; r < n; r += nw) {
    const int64_t bh = r / rows;
    const int t = (int)(r % rows), b = (int)(bh / s.H), h = (int)(bh % s.H);
    phi_row(s.fm, s.D, row_of(x, xs, b, t, h), f + r * s.D, lane);
  }
}

/* Block y's outer sum over its rows t, in order: out[:D D] = sum_t a_t^T c_t (a from scratch
 * [B, H, rows, D], c rows by cs), out[D D:] = sum_t w_t a_t (w [B, H, T], or 1 where NULL), for
 * the blocks that need it: key blocks marginal somewhere (by_column, the states: nbk blocks of
 * the kr key rows), or query blocks with a marginal block (their dS_i, dz_i: nb blocks of T
 * rows). Grid (B H blocks, entries / LTHREADS), a thread per entry. */
__global__ void block_outer(sla_shape s, const int32_t *classes, bool by_column, const float *a,
                            const float *c, stride3 cs, const float *w, float *out) {
  const int n = by_column ? s.nbk : s.nb, all_rows = by_column ? s.kr : s.T;
  const int64_t bh = (int64_t)blockIdx.x / n;
  const int y = (int)((int64_t)blockIdx.x % n);
  const int64_t DD = (int64_t)s.D * s.D, x = (int64_t)blockIdx.y * blockDim.x + threadIdx.x;
  if (x >= DD + s.D) return;
  if (by_column ? !column_has_marginal(s, classes, bh, y) : !row_has_marginal(s, classes, bh, y))
    return;
  const int b = (int)(bh / s.H), h = (int)(bh % s.H), t0 = y * s.block;
  const int rows = min(s.block, all_rows - t0);
  const float *ar = a + (bh * all_rows + t0) * s.D;
  float acc = 0.f;
  if (x < DD) {
    const int d1 = (int)(x / s.D), d2 = (int)(x % s.D);
    const float *cr = row_of(c, cs, b, t0, h) + d2;
    for (int r = 0; r < rows; r++) acc = fmaf(ar[(int64_t)r * s.D + d1], cr[r * cs.t], acc);
  } else {
    const int d1 = (int)(x - DD);
    const float *wr = w ? w + bh * s.T + t0 : nullptr;
    for (int r = 0; r < rows; r++) acc = fmaf(ar[(int64_t)r * s.D + d1], wr ? wr[r] : 1.f, acc);
  }
  out[state_at(s, n, bh, y, x)] = acc;
}

/* sums[bh, i] = the sum of the key block states src[bh, y] (nbk a head) over the key blocks y
 * marginal for query block i (y < first + i, along the class row; sums nb a head), or for COLUMN
 * the sum of the query block gradients src[bh, y] (nb a head) over the query blocks y for which
 * key block i is marginal (down the column; sums nbk a head), in increasing y: a thread per
 * entry. Zero where there are none. */
template <bool COLUMN>
__global__ void marginal_sums(sla_shape s, const int32_t *classes, const float *src, float *sums) {
  const int n = COLUMN ? s.nbk : s.nb, n_src = COLUMN ? s.nb : s.nbk;
  const int64_t per = (int64_t)s.D * (s.D + 1), count = (int64_t)s.B * s.H * n * per;
  HY_GRID_STRIDE(e, count) {
    const int64_t x = e % per, r = e / per, bh = r / n;
    const int i = (int)(r % n);
    const int32_t *cls = classes + bh * s.nb * s.nbk;
    float acc = 0.f;
    if (COLUMN) {
      for (int y = after_block(s, i); y < s.nb; y++)
        if (cls[(int64_t)y * s.nbk + i] == HY_SLA_MARGINAL)
          acc += src[state_at(s, n_src, bh, y, x)];
    } else {
      for (int y = 0; y < s.first + i; y++)
        if (cls[(int64_t)i * s.nbk + y] == HY_SLA_MARGINAL)
          acc += src[state_at(s, n_src, bh, y, x)];
    }
    sums[state_at(s, n, bh, i, x)] = acc;
  }
}

/* The rows of grid block (blockIdx.x, blockIdx.y) of a linear row kernel over n blocks of `rows`
 * rows (queries: nb, T; keys: nbk, kr): head bh, block i, rows from t0 (count <= 0: none). */
struct row_chunk {
  int64_t bh;
  int b, h, i, t0, n;
};

__device__ __forceinline__ row_chunk chunk_of(const sla_shape &s, int n, int rows) {
  row_chunk c;
  c.bh = (int64_t)blockIdx.x / n;
  c.i = (int)((int64_t)blockIdx.x % n);
  c.b = (int)(c.bh / s.H);
  c.h = (int)(c.bh % s.H);
  c.t0 = c.i * s.block + (int)blockIdx.y * LR;
  c.n = min(LR, min((c.i + 1) * s.block, rows) - c.t0);
  return c;
}

/* o_l of up to LR rows of query block i: phi(q_t) S_i / (phi(q_t) . z_i + eps), 0 without
 * marginal blocks. Shared memory: den [LR]. */
__global__ void __launch_bounds__(LTHREADS)
    linear_forward(sla_shape s, const int32_t *classes, const float *fq, const float *sums,
                   float *o) {
  __shared__ float den[LR];
  const row_chunk c = chunk_of(s, s.nb, s.T);
  if (c.n <= 0) return;
  const int64_t ldo = 2 * (int64_t)s.H * s.D;
  float *ol = o + ((c.b * (int64_t)s.T + c.t0) * s.H + c.h) * 2 * s.D + s.D;
  if (!row_has_marginal(s, classes, c.bh, c.i)) {
    for (int e = (int)threadIdx.x; e < c.n * s.D; e += LTHREADS) ol[e / s.D * ldo + e % s.D] = 0.f;
    return;
  }
  const float *S = sums + state_at(s, s.nb, c.bh, c.i, 0),
              *z = sums + state_at(s, s.nb, c.bh, c.i, (int64_t)s.D * s.D);
  const float *f = fq + (c.bh * s.T + c.t0) * s.D;
  for (int r = (int)threadIdx.x; r < c.n; r += LTHREADS) {
    float d = SLA_EPS;
    for (int x = 0; x < s.D; x++) d = fmaf(f[(int64_t)r * s.D + x], z[x], d);
    den[r] = d;
  }
  __syncthreads();
  for (int e = (int)threadIdx.x; e < c.n * s.D; e += LTHREADS) {
    const int r = e / s.D, d2 = e % s.D;
    const float *fr = f + (int64_t)r * s.D;
    float num = 0.f;
    for (int d1 = 0; d1 < s.D; d1++) num = fmaf(fr[d1], S[(int64_t)d1 * s.D + d2], num);
    ol[r * ldo + d2] = num * (1.f / den[r]);
  }
}

/* gx += (d phi / d x)^T df for the chunk's rows: df [LR, D+1] in shared memory, f = phi(x) rows D
 * apart, x rows by xs, gx rows gld apart. A warp per row. */
__device__ void phi_backward_rows(const sla_shape &s, int n, const float *df, const float *f,
                                  const float *x, int64_t xld, float *gx, int64_t gld) {
  const int lane = (int)threadIdx.x % 32, warp = (int)threadIdx.x / 32, ld = s.D + 1;
  for (int r = warp; r < n; r += LTHREADS / 32) {
    const float *fr = f + (int64_t)r * s.D, *xr = x + r * xld, *dr = df + r * ld;
    float *gr = gx + r * gld;
    if (s.fm == HY_SLA_PHI_SOFTMAX) {
      float dot = 0.f;
      for (int d = lane; d < s.D; d += 32) dot = fmaf(fr[d], dr[d], dot);
      dot = warp_all_sum(dot);
      for (int d = lane; d < s.D; d += 32) gr[d] += fr[d] * (dr[d] - dot);
    } else if (s.fm == HY_SLA_PHI_ELU) {
      for (int d = lane; d < s.D; d += 32) gr[d] += xr[d] > 0.f ? dr[d] : dr[d] * fr[d];
    } else {
      for (int d = lane; d < s.D; d += 32) gr[d] += xr[d] > 0.f ? dr[d] : 0.f;
    }
  }
}

/* df[r, d1] = sum_d2 X[r, d2] M[d1, d2] + cr[r] z[d1] (cr NULL: 1) for the chunk's rows; X and df
 * [LR, D+1] in shared memory (rows padded against bank conflicts), r fastest across threads so
 * that a warp reads one row of M. */
__device__ void times_transpose(const sla_shape &s, int n, const float *X, const float *cr,
                                const float *M, const float *z, float *df) {
  const int ld = s.D + 1;
  for (int e = (int)threadIdx.x; e < n * s.D; e += LTHREADS) {
    const int r = e % n, d1 = e / n;
    const float *Mr = M + (int64_t)d1 * s.D, *Xr = X + r * ld;
    float acc = 0.f;
    for (int d2 = 0; d2 < s.D; d2++) acc = fmaf(Xr[d2], Mr[d2], acc);
    df[r * ld + d1] = acc + (cr ? cr[r] : 1.f) * z[d1];
  }
}

/* The linear branch's backward for up to LR rows of query block i with marginal blocks:
 * den_t = phi(q_t) . z_i + eps, dnum_t = g_t / den_t, dden_t = -(g_t . o_l_t) / den_t (into the
 * scratch dnum [B, H, T, D] and dden [B, H, T]), and with gq, d phi(q_t) = dnum_t S_i^T +
 * dden_t z_i through the feature map. Shared memory: dnum, d phi [LR, D+1], dden [LR]. */
__global__ void __launch_bounds__(LTHREADS)
    linear_backward_rows(sla_shape s, const int32_t *classes, const float *q, const float *fq,
                         const float *sums, const float *o, const float *go, float *dnum,
                         float *dden, float *gq) {
  extern __shared__ float lsh[];
  const int ld = s.D + 1;
  float *dn = lsh, *df = dn + LR * ld, *dd = df + LR * ld;
  const row_chunk c = chunk_of(s, s.nb, s.T);
  if (c.n <= 0 || !row_has_marginal(s, classes, c.bh, c.i)) return;
  const float *S = sums + state_at(s, s.nb, c.bh, c.i, 0),
              *z = sums + state_at(s, s.nb, c.bh, c.i, (int64_t)s.D * s.D);
  const float *f = fq + (c.bh * s.T + c.t0) * s.D;
  const int64_t ldo = 2 * (int64_t)s.H * s.D,
                off = ((c.b * (int64_t)s.T + c.t0) * s.H + c.h) * 2 * s.D + s.D;
  const float *ol = o + off, *gol = go + off;
  const int lane = (int)threadIdx.x % 32, warp = (int)threadIdx.x / 32;
  for (int r = warp; r < c.n; r += LTHREADS / 32) {
    const float *fr = f + (int64_t)r * s.D, *orow = ol + r * ldo, *grow = gol + r * ldo;
    float den = 0.f, go_o = 0.f;
    for (int d = lane; d < s.D; d += 32) {
      den = fmaf(fr[d], z[d], den);
      go_o = fmaf(grow[d], orow[d], go_o);
    }
    const float inv = 1.f / (warp_all_sum(den) + SLA_EPS);
    go_o = warp_all_sum(go_o);
    float *dnr = dnum + (c.bh * s.T + c.t0 + r) * s.D;
    for (int d = lane; d < s.D; d += 32) {
      const float x = grow[d] * inv;
      dn[r * ld + d] = x;
      dnr[d] = x;
    }
    if (lane == 0) dd[r] = dden[c.bh * s.T + c.t0 + r] = -go_o * inv;
  }
  if (!gq) return;
  __syncthreads();
  times_transpose(s, c.n, dn, dd, S, z, df);
  __syncthreads();
  phi_backward_rows(s, c.n, df, f, row_of(q, s.qs, c.b, c.t0, c.h), s.qs.t,
                    gq + ((c.b * (int64_t)s.T + c.t0) * s.H + c.h) * s.D, (int64_t)s.H * s.D);
}

/* Key block j's share for up to LR of its rows, where j is marginal for some query block, from
 * G_j, g_j (the column sums of dS_i, dz_i): gv += phi(K_j) G_j, and with gk,
 * d phi(K_j) = V_j G_j^T + 1 g_j^T through the feature map. Shared memory: V, d phi [LR, D+1]. */
__global__ void __launch_bounds__(LTHREADS)
    linear_backward_keys(sla_shape s, const int32_t *classes, const float *k, const float *v,
                         const float *fk, const float *gsums, float *gk, float *gv) {
  extern __shared__ float lsh[];
  const int ld = s.D + 1;
  float *vs = lsh, *df = vs + LR * ld;
  const row_chunk c = chunk_of(s, s.nbk, s.kr); /* c.i: the key block */
  if (c.n <= 0 || !column_has_marginal(s, classes, c.bh, c.i)) return;
  const float *G = gsums + state_at(s, s.nbk, c.bh, c.i, 0),
              *g = gsums + state_at(s, s.nbk, c.bh, c.i, (int64_t)s.D * s.D);
  const float *f = fk + (c.bh * s.kr + c.t0) * s.D;
  const int64_t ldg = (int64_t)s.H * s.D, off = ((c.b * (int64_t)s.Tk + c.t0) * s.H + c.h) * s.D;
  if (gv)
    for (int e = (int)threadIdx.x; e < c.n * s.D; e += LTHREADS) {
      const int r = e / s.D, d2 = e % s.D;
      const float *fr = f + (int64_t)r * s.D;
      float acc = 0.f;
      for (int d1 = 0; d1 < s.D; d1++) acc = fmaf(fr[d1], G[(int64_t)d1 * s.D + d2], acc);
      gv[off + r * ldg + d2] += acc;
    }
  if (!gk) return;
  const float *vr = row_of(v, s.vs, c.b, c.t0, c.h);
  for (int e = (int)threadIdx.x; e < c.n * s.D; e += LTHREADS)
    vs[e / s.D * ld + e % s.D] = vr[(int64_t)(e / s.D) * s.vs.t + e % s.D];
  __syncthreads(); /* V is staged, and gv's rows written (gk may be the same buffer) */
  times_transpose(s, c.n, vs, nullptr, G, g, df);
  __syncthreads();
  phi_backward_rows(s, c.n, df, f, row_of(k, s.ks, c.b, c.t0, c.h), s.ks.t, gk + off, ldg);
}

/* ---- launches ---- */

int padded(int64_t D) {
  if (D < 1 || D > HY_CUDA_ATTN_HEAD_MAX)
    hy_die("sla", "head size D = %lld: the GPU kernels take 1..%d", (long long)D,
           HY_CUDA_ATTN_HEAD_MAX);
  return D <= 16 ? 16 : D <= 32 ? 32 : D <= 64 ? 64 : D <= 128 ? 128 : 256;
}

sla_shape shape_of(const hy_sla_dims *dm) {
  const hy_attn_dims *a = &dm->a;
  int64_t kr = dm->n_key_blocks * dm->block < a->Tk ? dm->n_key_blocks * dm->block : a->Tk;
  int64_t qtiles = ((dm->block < a->T ? dm->block : a->T) + TB - 1) / TB;
  int64_t ktiles = ((dm->block < kr ? dm->block : kr) + TB - 1) / TB;
  if (a->Tk > INT32_MAX / 2 || dm->block > INT32_MAX / 2 || a->B * a->H > INT32_MAX ||
      a->D > INT32_MAX / 2 || dm->n_blocks * qtiles > 65535 || dm->n_key_blocks * ktiles > 65535)
    hy_die("sla",
           "sizes B %lld, T %lld of Tk %lld, H %lld, D %lld, block %lld too large for the GPU "
           "kernels",
           (long long)a->B, (long long)a->T, (long long)a->Tk, (long long)a->H, (long long)a->D,
           (long long)dm->block);
  sla_shape s;
  s.B = (int)a->B;
  s.T = (int)a->T;
  s.H = (int)a->H;
  s.D = (int)a->D;
  s.block = (int)dm->block;
  s.nb = (int)dm->n_blocks;
  s.fm = dm->feature_map;
  s.Tk = (int)a->Tk;
  s.kr = (int)kr;
  s.nbk = (int)dm->n_key_blocks;
  s.first = (int)dm->first_block;
  s.q0 = (int)a->q_offset;
  s.qtiles = (int)qtiles;
  s.ktiles = (int)ktiles;
  s.qs = {a->q_stride[0], a->q_stride[1], a->q_stride[2]};
  s.ks = {a->k_stride[0], a->k_stride[1], a->k_stride[2]};
  s.vs = {a->v_stride[0], a->v_stride[1], a->v_stride[2]};
  s.scale = (float)a->scale;
  s.scale2 = (float)(a->scale * 1.4426950408889634);
  return s;
}

bool empty(const hy_sla_dims *dm) { return dm->a.B * dm->a.H * dm->a.T * dm->a.D == 0; }

bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

/* Rows of x can be copied in 16-byte pieces. */
bool rows_vec4(const void *x, stride3 st, int D) {
  return D % 4 == 0 && aligned16(x) && st.b % 4 == 0 && st.t % 4 == 0 && st.h % 4 == 0;
}

/* Scratch [B, H, rows] floats, or [B, H, rows, D] with per_row D. */
float *scratch_rows(const sla_shape &s, int rows, int64_t per_row) {
  return (float *)hy_arena_alloc_on(HY_CUDA, sizeof(float) * (size_t)s.B * (size_t)s.H *
                                                 (size_t)rows * (size_t)per_row);
}

/* Scratch for the sums of the states of the query blocks or of the key blocks (nbk >= nb). */
float *scratch_states(const sla_shape &s) {
  return (float *)hy_arena_alloc_on(HY_CUDA, sizeof(float) * (size_t)s.B * (size_t)s.H *
                                                 (size_t)s.nbk * (size_t)(s.D * (s.D + 1)));
}

/* Raise a kernel's dynamic shared memory limit to `bytes` where that is more than the default. */
template <typename Kernel> void allow_bytes(Kernel kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    HY_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

void phi_of(const sla_shape &s, const float *x, stride3 xs, int rows, float *f) {
  phi_rows<<<hy_cuda_blocks((int64_t)s.B * s.H * rows * 32), HY_CUDA_THREADS, 0,
             hy_cuda_stream()>>>(s, x, xs, rows, f);
  HY_CUDA_LAUNCHED(phi_rows);
}

template <bool COLUMN>
void sums_of(const sla_shape &s, const int32_t *classes, const float *src, float *sums) {
  int64_t n = (int64_t)s.B * s.H * (COLUMN ? s.nbk : s.nb) * s.D * (s.D + 1);
  marginal_sums<COLUMN>
      <<<hy_cuda_blocks(n), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(s, classes, src, sums);
  HY_CUDA_LAUNCHED(marginal_sums);
}

/* block_outer's grid over the key blocks (by_column) or the query blocks. */
dim3 outer_grid(const sla_shape &s, bool by_column) {
  int64_t entries = (int64_t)s.D * (s.D + 1);
  return dim3((unsigned)((int64_t)s.B * s.H * (by_column ? s.nbk : s.nb)),
              (unsigned)((entries + LTHREADS - 1) / LTHREADS));
}

/* The linear row kernels' grid over the query blocks' rows, or the key blocks' (keys). */
dim3 rows_grid(const sla_shape &s, bool keys) {
  int all = keys ? s.kr : s.T, rows = s.block < all ? s.block : all;
  return dim3((unsigned)((int64_t)s.B * s.H * (keys ? s.nbk : s.nb)),
              (unsigned)((rows + LR - 1) / LR));
}

size_t rows_shared(const sla_shape &s, int tiles) {
  return sizeof(float) * (size_t)(tiles * LR * (s.D + 1) + LR);
}

template <int DP>
void softmax_forward(const sla_shape &s, const int32_t *classes, const float *q, const float *k,
                     const float *v, float *o, float *lse, bool vec4) {
  constexpr int LD = DP + 4;
  static bool done;
  auto kernel = sparse_forward<DP>;
  size_t bytes = sizeof(float) * (size_t)(3 * TB * LD + TB * (TB + 16));
  hy_allow_shared(kernel, bytes, &done);
  dim3 grid((unsigned)(s.B * s.H), (unsigned)(s.nb * s.qtiles));
  kernel<<<grid, THREADS, bytes, hy_cuda_stream()>>>(s, classes, q, k, v, o, lse, vec4);
  HY_CUDA_LAUNCHED(sparse_forward);
}

template <int DP>
void softmax_backward(const sla_shape &s, const int32_t *classes, const float *q, const float *k,
                      const float *v, const float *go, const float *lse, const float *delta,
                      float *gq, float *gk, float *gv, bool vec4) {
  constexpr int LD = DP + 4, LDP = TB + 16;
  dim3 grid((unsigned)(s.B * s.H), (unsigned)(s.nb * s.qtiles)),
      key_grid((unsigned)(s.B * s.H), (unsigned)(s.nbk * s.ktiles));
  if (gq) {
    static bool done;
    auto kernel = sparse_backward_dq<DP>;
    size_t bytes = sizeof(float) * (size_t)(4 * TB * LD + TB * LDP);
    hy_allow_shared(kernel, bytes, &done);
    kernel<<<grid, THREADS, bytes, hy_cuda_stream()>>>(s, classes, q, k, v, go, lse, delta, gq,
                                                       vec4);
    HY_CUDA_LAUNCHED(sparse_backward_dq);
  }
  if (gk || gv) {
    static bool done;
    auto kernel = sparse_backward_dkdv<DP>;
    size_t bytes = sizeof(float) * (size_t)(4 * TB * LD + 2 * TB * LDP + 2 * TB);
    hy_allow_shared(kernel, bytes, &done);
    kernel<<<key_grid, THREADS, bytes, hy_cuda_stream()>>>(s, classes, q, k, v, go, lse, delta, gk,
                                                           gv, vec4);
    HY_CUDA_LAUNCHED(sparse_backward_dkdv);
  }
}

void softmax_forward_any(const sla_shape &s, const int32_t *classes, const float *q, const float *k,
                         const float *v, float *o, float *lse, bool vec4) {
  switch (padded(s.D)) {
  case 16: softmax_forward<16>(s, classes, q, k, v, o, lse, vec4); break;
  case 32: softmax_forward<32>(s, classes, q, k, v, o, lse, vec4); break;
  case 64: softmax_forward<64>(s, classes, q, k, v, o, lse, vec4); break;
  case 128: softmax_forward<128>(s, classes, q, k, v, o, lse, vec4); break;
  default: softmax_forward<256>(s, classes, q, k, v, o, lse, vec4); break;
  }
}

void softmax_backward_any(const sla_shape &s, const int32_t *classes, const float *q,
                          const float *k, const float *v, const float *go, const float *lse,
                          const float *delta, float *gq, float *gk, float *gv, bool vec4) {
  switch (padded(s.D)) {
  case 16: softmax_backward<16>(s, classes, q, k, v, go, lse, delta, gq, gk, gv, vec4); break;
  case 32: softmax_backward<32>(s, classes, q, k, v, go, lse, delta, gq, gk, gv, vec4); break;
  case 64: softmax_backward<64>(s, classes, q, k, v, go, lse, delta, gq, gk, gv, vec4); break;
  case 128: softmax_backward<128>(s, classes, q, k, v, go, lse, delta, gq, gk, gv, vec4); break;
  default: softmax_backward<256>(s, classes, q, k, v, go, lse, delta, gq, gk, gv, vec4); break;
  }
}

/* The inputs' and the [B, T, H, 2 D] output's rows all copy in 16-byte pieces. */
bool all_vec4(const sla_shape &s, const void *q, const void *k, const void *v, const void *o) {
  stride3 wide = {2 * (int64_t)s.T * s.H * s.D, 2 * (int64_t)s.H * s.D, 2 * (int64_t)s.D};
  return rows_vec4(q, s.qs, s.D) && rows_vec4(k, s.ks, s.D) && rows_vec4(v, s.vs, s.D) &&
         rows_vec4(o, wide, s.D);
}

/* scratch [B, H, T, D] rows */
stride3 head_major(const sla_shape &s) {
  return {(int64_t)s.H * s.T * s.D, (int64_t)s.D, (int64_t)s.T * s.D};
}

/* The counts per query block are host memory: they go to the kernel as an argument, or for more
 * than PARAM_BLOCKS blocks through device memory kept for the process, one copy per distinct
 * selection (the counts follow from nb and the two fractions, so a model has one or two). The copy
 * is queued once, from pinned host memory that is never written again, to device memory that is
 * never written again: it needs no synchronization whenever the GPU gets to it, later steps copy
 * nothing, and a captured step replays reading the same memory. */
struct device_counts {
  int nb;
  int64_t *host; /* pinned: n_critical, then n_negligible */
  int64_t *dev;
  device_counts *next;
};

const int64_t *counts_on_device(const hy_sla_dims *dims, int nb) {
  static device_counts *kept;
  size_t bytes = sizeof(int64_t) * (size_t)nb;
  for (device_counts *c = kept; c; c = c->next)
    if (c->nb == nb && !memcmp(c->host, dims->n_critical, bytes) &&
        !memcmp(c->host + nb, dims->n_negligible, bytes))
      return c->dev;
  device_counts *c = (device_counts *)malloc(sizeof *c);
  if (!c) hy_die("sla_select", "out of memory");
  c->nb = nb;
  HY_CUDA_CHECK(cudaHostAlloc((void **)&c->host, 2 * bytes, cudaHostAllocDefault));
  memcpy(c->host, dims->n_critical, bytes);
  memcpy(c->host + nb, dims->n_negligible, bytes);
  HY_CUDA_CHECK(cudaMalloc((void **)&c->dev, 2 * bytes));
  HY_CUDA_CHECK(
      cudaMemcpyAsync(c->dev, c->host, 2 * bytes, cudaMemcpyHostToDevice, hy_cuda_stream()));
  c->next = kept;
  kept = c;
  return c->dev;
}

/* states[bh, j] = (phi(K_j)^T V_j, sum phi(K_j)) of each key block j marginal somewhere; f:
 * scratch [B, H, kr, D] for phi(K). */
void key_states(const sla_shape &s, const int32_t *classes, const float *k, const float *v,
                float *f, float *states) {
  phi_of(s, k, s.ks, s.kr, f);
  block_outer<<<outer_grid(s, true), LTHREADS, 0, hy_cuda_stream()>>>(s, classes, true, f, v, s.vs,
                                                                      nullptr, states);
  HY_CUDA_LAUNCHED(block_outer);
}

} // namespace

extern "C" void cuda_sla_select_f32(const hy_sla_dims *dims, const float *q, const float *k,
                                    const float *q_before, int32_t *classes) {
  if (dims->a.B * dims->a.H * dims->n_blocks == 0) return;
  sla_shape s = shape_of(dims);
  size_t score_bytes = sizeof(double) * (size_t)s.nbk;
  if (s.nbk > HY_CUDA_SLA_SELECT_BLOCKS_MAX)
    hy_die("sla_select", "%d blocks: the GPU selection ranks at most %d", s.nbk,
           HY_CUDA_SLA_SELECT_BLOCKS_MAX);
  hy_arena_mark mark = hy_arena_get_mark();
  counts_param cp = {};
  const int64_t *counts = nullptr;
  if (s.nb <= PARAM_BLOCKS) {
    for (int i = 0; i < s.nb; i++) {
      cp.critical[i] = (int32_t)dims->n_critical[i];
      cp.negligible[i] = (int32_t)dims->n_negligible[i];
    }
  } else {
    counts = counts_on_device(dims, s.nb);
  }
  /* pq [B H, 1 + nb, D]: the block before the queries (when there is one), then theirs */
  size_t per_head = sizeof(double) * (size_t)s.B * (size_t)s.H * (size_t)s.D;
  double *pq = (double *)hy_arena_alloc_on(HY_CUDA, per_head * (size_t)(s.nb + 1));
  double *pk = (double *)hy_arena_alloc_on(HY_CUDA, per_head * (size_t)(s.nbk ? s.nbk : 1));
  int64_t bhd = (int64_t)s.B * s.H * s.D;
  if (q_before) {
    stride3 bs = {(int64_t)s.block * s.H * s.D, (int64_t)s.H * s.D, (int64_t)s.D};
    pool_blocks<<<hy_cuda_blocks(bhd), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(
        s, q_before, bs, s.block, 1, s.nb + 1, 0, pq);
    HY_CUDA_LAUNCHED(pool_blocks);
  }
  if (bhd > 0) {
    pool_blocks<<<hy_cuda_blocks(bhd * s.nb), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(
        s, q, s.qs, s.T, s.nb, s.nb + 1, 1, pq);
    HY_CUDA_LAUNCHED(pool_blocks);
    pool_blocks<<<hy_cuda_blocks(bhd * s.nbk), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(
        s, k, s.ks, s.kr, s.nbk, s.nbk, 0, pk);
    HY_CUDA_LAUNCHED(pool_blocks);
  }
  allow_bytes(rank_blocks, score_bytes);
  rank_blocks<<<(unsigned)((int64_t)s.B * s.H * s.nb), 128, score_bytes, hy_cuda_stream()>>>(
      s, pq, pk, cp, counts, classes);
  HY_CUDA_LAUNCHED(rank_blocks);
  hy_arena_rewind(mark);
}

extern "C" void cuda_sla_f32(const hy_sla_dims *dims, const int32_t *classes, const float *q,
                             const float *k, const float *v, float *o, float *lse, float *states) {
  if (empty(dims)) return;
  sla_shape s = shape_of(dims);
  softmax_forward_any(s, classes, q, k, v, o, lse, all_vec4(s, q, k, v, o));
  hy_arena_mark mark = hy_arena_get_mark();
  float *f = scratch_rows(s, s.kr > s.T ? s.kr : s.T, s.D), *sums = scratch_states(s);
  key_states(s, classes, k, v, f, states);
  sums_of<false>(s, classes, states, sums);
  phi_of(s, q, s.qs, s.T, f);
  linear_forward<<<rows_grid(s, false), LTHREADS, 0, hy_cuda_stream()>>>(s, classes, f, sums, o);
  HY_CUDA_LAUNCHED(linear_forward);
  hy_arena_rewind(mark);
}

extern "C" void cuda_sla_backward_f32(const hy_sla_dims *dims, const int32_t *classes,
                                      const float *q, const float *k, const float *v,
                                      const float *o, const float *lse, float *states,
                                      float *dstates, const float *go, float *gq, float *gk,
                                      float *gv) {
  if (empty(dims) || (!gq && !gk && !gv)) return;
  sla_shape s = shape_of(dims);
  bool vec4 = all_vec4(s, q, k, v, o) && aligned16(go) && (!gq || aligned16(gq)) &&
              (!gk || aligned16(gk)) && (!gv || aligned16(gv));
  hy_arena_mark mark = hy_arena_get_mark();
  float *delta = scratch_rows(s, s.T, 1);
  softmax_delta<<<hy_cuda_blocks((int64_t)s.B * s.T * s.H * 32), HY_CUDA_THREADS, 0,
                  hy_cuda_stream()>>>(s, o, go, delta);
  HY_CUDA_LAUNCHED(softmax_delta);
  softmax_backward_any(s, classes, q, k, v, go, lse, delta, gq, gk, gv, vec4);

  /* the linear branch: the key block states again, the query rows, then (for gk, gv) the key
   * rows */
  float *f = scratch_rows(s, s.kr > s.T ? s.kr : s.T, s.D), *dnum = scratch_rows(s, s.T, s.D);
  float *dden = scratch_rows(s, s.T, 1), *sums = scratch_states(s);
  key_states(s, classes, k, v, f, states);
  sums_of<false>(s, classes, states, sums);
  phi_of(s, q, s.qs, s.T, f);
  size_t bytes = rows_shared(s, 2);
  allow_bytes(linear_backward_rows, bytes);
  linear_backward_rows<<<rows_grid(s, false), LTHREADS, bytes, hy_cuda_stream()>>>(
      s, classes, q, f, sums, o, go, dnum, dden, gq);
  HY_CUDA_LAUNCHED(linear_backward_rows);
  if (gk || gv) {
    block_outer<<<outer_grid(s, false), LTHREADS, 0, hy_cuda_stream()>>>(
        s, classes, false, f, dnum, head_major(s), dden, dstates);
    HY_CUDA_LAUNCHED(block_outer);
    sums_of<true>(s, classes, dstates, sums); /* the states' sums are read: G_j, g_j now */
    phi_of(s, k, s.ks, s.kr, f);
    bytes = rows_shared(s, 2);
    allow_bytes(linear_backward_keys, bytes);
    linear_backward_keys<<<rows_grid(s, true), LTHREADS, bytes, hy_cuda_stream()>>>(
        s, classes, k, v, f, sums, gk, gv);
    HY_CUDA_LAUNCHED(linear_backward_keys);
  }
  hy_arena_rewind(mark);
}
