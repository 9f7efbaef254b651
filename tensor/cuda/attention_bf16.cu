#include "tensor/cuda/attention_bf16.h"
#include "tensor/cuda/common.cuh"

#include <cuda_bf16.h>
#include <math.h>

/* Causal softmax attention with its matmuls on the tensor cores: bf16 operands, f32 sums
 * (mma.sync m16n8k16), for head sizes 64 and 128. Same semantics and layouts as the f32 kernels
 * of attention.cu (o and the gradients contiguous [B, T, H, D], lse [B, H, T], q, k, v rows by
 * their strides, queries at q_offset against Tk keys, the window rule t - window < s <= t); only
 * the operands of the products are rounded. q, k, v and dO are read as f32 and rounded to bf16
 * where they are staged (shared memory or fragment registers); P and dS are rounded from their
 * f32 values in registers. The softmax statistics, lse, o and every gradient stay f32.
 *
 * Warps work on 16-row slices of a tile: one warp owns 16 queries (forward, dQ) or 16 keys (dK,
 * dV), so a score tile's accumulator is already the A operand of the product that follows (P V,
 * dS K, P^T dO, dS^T Q) and never leaves the registers. Every output has one owner, and every sum
 * runs in a fixed order: no atomics.
 *
 * Fragment layouts of mma.m16n8k16 (row.col), lane = 4 g + t:
 *   A (16 x 16, row-major): reg 0 (g, 2t..2t+1), reg 1 (g+8, 2t..), reg 2 (g, 2t+8..),
 *     reg 3 (g+8, 2t+8..), each register two bf16, the lower column in the low half;
 *   B (16 x 8, k x n): reg 0 (k 2t..2t+1, n g), reg 1 (k 2t+8..2t+9, n g);
 *   C (16 x 8, f32): c0, c1 (g, 2t..2t+1), c2, c3 (g+8, 2t..2t+1).
 * So two neighbouring C tiles (columns 0-7 and 8-15) are, rounded pairwise, an A fragment.
 *
 * Shared tiles are bf16, row-major with rows padded by 8 (16 bytes): a fragment load reads rows
 * g = 0..7 at word offsets t = 0..3, and a row of an odd multiple of 4 words (20, 36, 68) puts
 * the 8 rows on 8 different groups of 4 banks, so the 32 lanes hit 32 banks. A B operand whose k
 * runs along the stored rows is staged transposed ([D][rows]: V for P V, K for dS K, dO and Q for
 * P^T dO and dS^T Q). */

namespace {

constexpr float LOG2E = 1.44269504088896340736f;
constexpr float LN2 = 0.69314718055994530942f;

struct bf_shape {
  int T, Tk, H, q_offset, window;
  int64_t qs[3], ks[3], vs[3]; /* strides over b, t, h */
  float scale, scale2;         /* scale, scale * log2(e): scores in base 2 */
};

/* Query gi does not see key j. */
__device__ __forceinline__ bool hidden(const bf_shape &a, int gi, int j) {
  return j > gi || (a.window > 0 && gi - j >= a.window);
}

/* No query of positions g0..g1 sees a key of j0..j1: the keys all come later, or all lie before
 * the window of the first query. */
__device__ __forceinline__ bool unseen(const bf_shape &a, int g0, int g1, int j0, int j1) {
  return j0 > g1 || (a.window > 0 && g0 - j1 >= a.window);
}

/* Some query of g0..g1 does not see some key of j0..j1: the elements need the mask. */
__device__ __forceinline__ bool partly_hidden(const bf_shape &a, int g0, int g1, int j0, int j1) {
  return j1 > g0 || (a.window > 0 && g1 - j0 >= a.window);
}

/* The first key any query from position gi0 on sees, rounded down to a tile of BC. */
__device__ __forceinline__ int first_key_tile(const bf_shape &a, int gi0, int BC) {
  return a.window > 0 && gi0 - a.window + 1 > 0 ? (gi0 - a.window + 1) / BC * BC : 0;
}

/* Two floats rounded to bf16 (nearest even) in one register, lo in the low half. */
__device__ __forceinline__ uint32_t pack(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return (uint32_t)__bfloat16_as_ushort(v.x) | ((uint32_t)__bfloat16_as_ushort(v.y) << 16);
}

__device__ __forceinline__ uint32_t ld32(const uint16_t *p) {
  return *reinterpret_cast<const uint32_t *>(p);
}

/* d += a b on the tensor cores: A 16 x 16 bf16, B 16 x 8 bf16, D 16 x 8 f32. */
__device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/* The A fragment of rows r0.. and columns k0.. of a row-major bf16 tile (rows ld apart). */
__device__ __forceinline__ void frag_a(uint32_t (&a)[4], const uint16_t *s, int ld, int r0, int k0,
                                       int lane) {
  const uint16_t *p = s + (r0 + lane / 4) * ld + k0 + 2 * (lane % 4);
  a[0] = ld32(p);
  a[1] = ld32(p + 8 * ld);
  a[2] = ld32(p + 8);
  a[3] = ld32(p + 8 * ld + 8);
}

/* The B fragment (k0.. by n0..) of a tile stored n-major: row n holds B[., n] along k. */
__device__ __forceinline__ void frag_b(uint32_t (&b)[2], const uint16_t *s, int ld, int n0, int k0,
                                       int lane) {
  const uint16_t *p = s + (n0 + lane / 4) * ld + k0 + 2 * (lane % 4);
  b[0] = ld32(p);
  b[1] = ld32(p + 8);
}

__device__ __forceinline__ float2 ld2(const float *p) {
  return *reinterpret_cast<const float2 *>(p);
}

/* The A fragments of 16 rows of an f32 matrix in global memory (rows `stride` floats apart, the
 * first n real, zeros after), all KT of its 16-column steps: straight to registers. */
template <int KT>
__device__ __forceinline__ void frags_a_global(uint32_t (&a)[KT][4], const float *g, int64_t stride,
                                               int n, int lane) {
  const int r = lane / 4, c = 2 * (lane % 4);
  const bool ok0 = r < n, ok1 = r + 8 < n;
  const float *p0 = ok0 ? g + r * stride : g, *p1 = ok1 ? g + (r + 8) * stride : g;
  const float2 z = make_float2(0.f, 0.f);
#pragma unroll
  for (int kk = 0; kk < KT; kk++) {
    float2 x00 = ok0 ? ld2(p0 + kk * 16 + c) : z, x01 = ok0 ? ld2(p0 + kk * 16 + c + 8) : z;
    float2 x10 = ok1 ? ld2(p1 + kk * 16 + c) : z, x11 = ok1 ? ld2(p1 + kk * 16 + c + 8) : z;
    a[kk][0] = pack(x00.x, x00.y);
    a[kk][1] = pack(x10.x, x10.y);
    a[kk][2] = pack(x01.x, x01.y);
    a[kk][3] = pack(x11.x, x11.y);
  }
}

__device__ __forceinline__ float4 load4(const float *g, int64_t stride, int n, int r, int c) {
  return r < n ? *reinterpret_cast<const float4 *>(g + r * stride + c)
               : make_float4(0.f, 0.f, 0.f, 0.f);
}

__device__ __forceinline__ float lane4(const float4 &v, int k) {
  return k == 0 ? v.x : k == 1 ? v.y : k == 2 ? v.z : v.w;
}

/* NB of a thread's pieces (from piece p0 on) of a [ROWS, D] f32 tile in global memory (rows
 * `stride` floats apart, the first n real, zeros after), staged as a row-major bf16 tile, rows ld
 * apart. Piece i: row i / (D/4), columns i % (D/4) * 4 .. + 3: a warp reads whole rows, and
 * writes them 8 bytes a lane, a half-warp's row of 32 banks at a time. */
template <int ROWS, int D, int THREADS, int NB> struct rows_part {
  static constexpr int C = D / 4, N = ROWS * C / THREADS;
  static_assert(ROWS * C % THREADS == 0 && N % NB == 0, "whole pieces per thread");
  float4 x[NB];
  __device__ __forceinline__ void fetch(const float *g, int64_t stride, int n, int p0) {
#pragma unroll
    for (int p = 0; p < NB; p++) {
      int i = (int)threadIdx.x + (p0 + p) * THREADS;
      x[p] = load4(g, stride, n, i / C, i % C * 4);
    }
  }
  __device__ __forceinline__ void put(uint16_t *s, int ld, int p0) const {
#pragma unroll
    for (int p = 0; p < NB; p++) {
      int i = (int)threadIdx.x + (p0 + p) * THREADS;
      *reinterpret_cast<uint2 *>(s + i / C * ld + i % C * 4) =
          make_uint2(pack(x[p].x, x[p].y), pack(x[p].z, x[p].w));
    }
  }
};

/* The same tile staged transposed, s[d][row] (rows of s ld apart). Piece i: rows r, r + 1 with
 * r = i % (ROWS/2) * 2, columns i / (ROWS/2) * 4 .. + 3, written as 4 words (the two rows' bf16
 * of a column): a warp's 32 lanes take consecutive row pairs, 32 consecutive words of s. */
template <int ROWS, int D, int THREADS, int NB> struct cols_part {
  static constexpr int P = ROWS / 2, N = P * (D / 4) / THREADS;
  static_assert(P * (D / 4) % THREADS == 0 && N % NB == 0 && P % 16 == 0, "whole pieces");
  float4 x[NB][2];
  __device__ __forceinline__ void fetch(const float *g, int64_t stride, int n, int p0) {
#pragma unroll
    for (int p = 0; p < NB; p++) {
      int i = (int)threadIdx.x + (p0 + p) * THREADS, r = i % P * 2, c = i / P * 4;
      x[p][0] = load4(g, stride, n, r, c);
      x[p][1] = load4(g, stride, n, r + 1, c);
    }
  }
  __device__ __forceinline__ void put(uint16_t *s, int ld, int p0) const {
#pragma unroll
    for (int p = 0; p < NB; p++) {
      int i = (int)threadIdx.x + (p0 + p) * THREADS, r = i % P * 2, c = i / P * 4;
#pragma unroll
      for (int e = 0; e < 4; e++)
        *reinterpret_cast<uint32_t *>(s + (c + e) * ld + r) =
            pack(lane4(x[p][0], e), lane4(x[p][1], e));
    }
  }
};

/* Stage a whole tile at once, a few pieces in flight at a time (registers are short). */
template <int ROWS, int D, int THREADS>
__device__ __forceinline__ void stage_rows(uint16_t *s, int ld, const float *g, int64_t stride,
                                           int n) {
  using all = rows_part<ROWS, D, THREADS, 1>;
  constexpr int NB = all::N < 4 ? all::N : 4;
#pragma unroll
  for (int p0 = 0; p0 < all::N; p0 += NB) {
    rows_part<ROWS, D, THREADS, NB> part;
    part.fetch(g, stride, n, p0);
    part.put(s, ld, p0);
  }
}

template <int ROWS, int D, int THREADS>
__device__ __forceinline__ void stage_cols(uint16_t *s, int ld, const float *g, int64_t stride,
                                           int n) {
  using all = cols_part<ROWS, D, THREADS, 1>;
  constexpr int NB = all::N < 2 ? all::N : 2;
#pragma unroll
  for (int p0 = 0; p0 < all::N; p0 += NB) {
    cols_part<ROWS, D, THREADS, NB> part;
    part.fetch(g, stride, n, p0);
    part.put(s, ld, p0);
  }
}

/* Max and sum over the 4 lanes (t = 0..3) that share a fragment row. */
__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

/* Two C tiles (16 rows by columns 0-7 and 8-15), rounded, as the A fragment of a 16 x 16 block. */
__device__ __forceinline__ void c_to_a(uint32_t (&a)[4], const float (&lo)[4],
                                       const float (&hi)[4]) {
  a[0] = pack(lo[0], lo[1]);
  a[1] = pack(lo[2], lo[3]);
  a[2] = pack(hi[0], hi[1]);
  a[3] = pack(hi[2], hi[3]);
}

/* out[row, 2t..2t+1 + 8n] (+)= the thread's two C columns of each of the D/8 tiles of one row. */
template <int D>
__device__ __forceinline__ void store_c_row(float *row, const float (&acc)[D / 8][4], int half,
                                            float mul, int t, bool accumulate) {
#pragma unroll
  for (int n = 0; n < D / 8; n++) {
    float2 *p = reinterpret_cast<float2 *>(row + n * 8 + 2 * t);
    float2 v = accumulate ? *p : make_float2(0.f, 0.f);
    v.x += acc[n][2 * half] * mul;
    v.y += acc[n][2 * half + 1] * mul;
    *p = v;
  }
}

constexpr int F_WARPS = 8, F_BR = 16 * F_WARPS;   /* forward: 128 queries a block */
constexpr int B_WARPS = 4, B_ROWS = 16 * B_WARPS; /* backward: 64 queries or keys a block */
/* Blocks per SM the register budget is cut for (forward, dQ, dK dV): left to itself the compiler
 * keeps a tile's worth of fragments in flight and one block fills the register file. */
template <int D> constexpr int F_BLOCKS = D == 64 ? 2 : 1;
template <int D> constexpr int Q_BLOCKS = D == 64 ? 3 : 1;
template <int D> constexpr int K_BLOCKS = D == 64 ? 2 : 1;

/* Forward: o = softmax(scale q k^T, causal) v, lse = the rows' log-sum-exps, online softmax in
 * f32. Grid (B H, query tiles of F_BR), the tiles with the most keys first; warp w owns queries
 * 16 w .. 16 w + 15 of the tile, its Q as A fragments in registers for the whole pass, its O as
 * D/8 C tiles. Key tiles of BC walk through shared memory: K [BC][D+8] (the B operand of Q K^T
 * is K's rows), V^T [D][BC+8] (the B operand of P V); the next tile's f32 loads are in flight
 * (registers) while the current one is multiplied. */
template <int D, int BC>
__global__ void __launch_bounds__(F_WARPS * 32, F_BLOCKS<D>)
    attention_forward_bf16(bf_shape a, const float *q, const float *k, const float *v, float *o,
                           float *lse) {
  constexpr int THREADS = F_WARPS * 32, LDK = D + 8, LDV = BC + 8, KT = D / 16, NT = BC / 8,
                OT = D / 8;
  extern __shared__ float4 shm[];
  uint16_t *Ks = reinterpret_cast<uint16_t *>(shm), *Vt = Ks + BC * LDK;
  const int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int b = (int)blockIdx.x / a.H, h = (int)blockIdx.x % a.H;
  const int i0 = (int)(gridDim.y - 1 - blockIdx.y) * F_BR, nq = min(F_BR, a.T - i0);
  const int gi0 = a.q_offset + i0, gi_last = gi0 + nq - 1;
  const int j_begin = first_key_tile(a, gi0, BC), j_end = gi_last + 1;
  const int w0 = warp * 16, wg0 = gi0 + w0, wg1 = min(wg0 + 15, gi_last); /* the warp's rows */
  const float *qb = q + b * a.qs[0] + h * a.qs[2], *kb = k + b * a.ks[0] + h * a.ks[2],
              *vb = v + b * a.vs[0] + h * a.vs[2];

  uint32_t qa[KT][4];
  frags_a_global<KT>(qa, qb + (int64_t)(i0 + w0) * a.qs[1], a.qs[1], nq - w0, lane);
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f}, acc[OT][4];
#pragma unroll
  for (int n = 0; n < OT; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;

  rows_part<BC, D, THREADS, rows_part<BC, D, THREADS, 1>::N> kr;
  cols_part<BC, D, THREADS, cols_part<BC, D, THREADS, 1>::N> vr;
  kr.fetch(kb + j_begin * a.ks[1], a.ks[1], a.Tk - j_begin, 0);
  vr.fetch(vb + j_begin * a.vs[1], a.vs[1], a.Tk - j_begin, 0);
  for (int j0 = j_begin; j0 < j_end; j0 += BC) {
    __syncthreads(); /* the last tile is read */
    kr.put(Ks, LDK, 0);
    vr.put(Vt, LDV, 0);
    __syncthreads();
    if (j0 + BC < j_end) {
      kr.fetch(kb + (j0 + BC) * a.ks[1], a.ks[1], a.Tk - j0 - BC, 0);
      vr.fetch(vb + (j0 + BC) * a.vs[1], a.vs[1], a.Tk - j0 - BC, 0);
    }
    if (w0 >= nq || unseen(a, wg0, wg1, j0, j0 + BC - 1)) continue;

    float s[NT][4];
#pragma unroll
    for (int n = 0; n < NT; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KT; kk++)
#pragma unroll
      for (int n = 0; n < NT; n++) {
        uint32_t bf[2];
        frag_b(bf, Ks, LDK, n * 8, kk * 16, lane);
        mma(s[n], qa[kk], bf);
      }

    const bool mask = partly_hidden(a, wg0, wg1, j0, j0 + BC - 1);
#pragma unroll
    for (int half = 0; half < 2; half++) {
      const int gi = wg0 + g + 8 * half;
      float mx = -INFINITY;
#pragma unroll
      for (int n = 0; n < NT; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
          float x = s[n][2 * half + e] * a.scale2;
          if (mask && hidden(a, gi, j0 + n * 8 + 2 * t + e)) x = -INFINITY;
          s[n][2 * half + e] = x;
          mx = fmaxf(mx, x);
        }
      const float m_new = fmaxf(m[half], quad_max(mx));
      const float m_use = m_new == -INFINITY ? 0.f : m_new; /* no key of the row yet (a window) */
      const float alpha = exp2f(m[half] - m_use);
      float sum = 0.f;
#pragma unroll
      for (int n = 0; n < NT; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
          float p = exp2f(s[n][2 * half + e] - m_use);
          s[n][2 * half + e] = p;
          sum += p;
        }
      m[half] = m_new;
      l[half] = l[half] * alpha + sum; /* this thread's columns; summed over the row at the end */
#pragma unroll
      for (int n = 0; n < OT; n++) {
        acc[n][2 * half] *= alpha;
        acc[n][2 * half + 1] *= alpha;
      }
    }

#pragma unroll
    for (int kc = 0; kc < BC / 16; kc++) {
      uint32_t pa[4];
      c_to_a(pa, s[2 * kc], s[2 * kc + 1]);
#pragma unroll
      for (int n = 0; n < OT; n++) {
        uint32_t bf[2];
        frag_b(bf, Vt, LDV, n * 8, kc * 16, lane);
        mma(acc[n], pa, bf);
      }
    }
  }

  if (w0 >= nq) return; /* the whole warp: its shuffles below stay full */
#pragma unroll
  for (int half = 0; half < 2; half++) {
    const float sum = quad_sum(l[half]);
    const int r = w0 + g + 8 * half;
    if (r >= nq) continue;
    const int64_t tq = i0 + r;
    store_c_row<D>(o + ((b * (int64_t)a.T + tq) * a.H + h) * D, acc, half, 1.f / sum, t, false);
    if (t == 0) lse[((int64_t)b * a.H + h) * a.T + tq] = m[half] * LN2 + logf(sum);
  }
}

/* dQ: one block per (query tile of B_ROWS, b, h), the tiles with the most keys first, walks the
 * key tiles its queries see. Warp w owns queries 16 w.., their Q and dO as A fragments in
 * registers; per 16 keys it forms S = Q K^T and dP = dO V^T (B operands: the rows of K and V),
 * P = exp(scale S - lse), dS = scale P (dP - delta) in f32, and sums dQ += dS K (B operand: K^T).
 * Shared memory: K, V [BC][D+8], K^T [D][BC+8]. */
template <int D, int BC>
__global__ void __launch_bounds__(B_WARPS * 32, Q_BLOCKS<D>)
    attention_backward_dq_bf16(bf_shape a, const float *q, const float *k, const float *v,
                               const float *go, const float *lse, const float *delta, float *gq) {
  constexpr int THREADS = B_WARPS * 32, LDK = D + 8, LDT = BC + 8, KT = D / 16, OT = D / 8;
  extern __shared__ float4 shm[];
  uint16_t *Ks = reinterpret_cast<uint16_t *>(shm), *Vs = Ks + BC * LDK, *Kt = Vs + BC * LDK;
  const int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int b = (int)blockIdx.x / a.H, h = (int)blockIdx.x % a.H;
  const int i0 = (int)(gridDim.y - 1 - blockIdx.y) * B_ROWS, nq = min(B_ROWS, a.T - i0);
  const int gi0 = a.q_offset + i0, gi_last = gi0 + nq - 1;
  const int j_begin = first_key_tile(a, gi0, BC), j_end = gi_last + 1;
  const int w0 = warp * 16, wg0 = gi0 + w0, wg1 = min(wg0 + 15, gi_last);
  const int64_t ldg = (int64_t)a.H * D;
  const float *qb = q + b * a.qs[0] + h * a.qs[2], *kb = k + b * a.ks[0] + h * a.ks[2],
              *vb = v + b * a.vs[0] + h * a.vs[2];
  const float *gob = go + ((int64_t)b * a.T * a.H + h) * D;
  const float *lse_bh = lse + ((int64_t)b * a.H + h) * a.T, *delta_bh = delta + (lse_bh - lse);

  uint32_t qa[KT][4], ga[KT][4];
  frags_a_global<KT>(qa, qb + (int64_t)(i0 + w0) * a.qs[1], a.qs[1], nq - w0, lane);
  frags_a_global<KT>(ga, gob + (i0 + w0) * ldg, ldg, nq - w0, lane);
  float lse2[2], dl[2], acc[OT][4];
#pragma unroll
  for (int half = 0; half < 2; half++) {
    const int r = w0 + g + 8 * half;
    lse2[half] = r < nq ? lse_bh[i0 + r] * LOG2E : 0.f;
    dl[half] = r < nq ? delta_bh[i0 + r] : 0.f;
  }
#pragma unroll
  for (int n = 0; n < OT; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;

  for (int j0 = j_begin; j0 < j_end; j0 += BC) {
    const int nk = a.Tk - j0;
    __syncthreads(); /* the last tile is read */
    stage_rows<BC, D, THREADS>(Ks, LDK, kb + j0 * a.ks[1], a.ks[1], nk);
    stage_rows<BC, D, THREADS>(Vs, LDK, vb + j0 * a.vs[1], a.vs[1], nk);
    stage_cols<BC, D, THREADS>(Kt, LDT, kb + j0 * a.ks[1], a.ks[1], nk);
    __syncthreads();
    if (w0 >= nq) continue;

#pragma unroll
    for (int kc = 0; kc < BC / 16; kc++) {
      const int jc = j0 + kc * 16;
      if (unseen(a, wg0, wg1, jc, jc + 15)) continue;
      float s[2][4] = {}, dp[2][4] = {};
#pragma unroll
      for (int kk = 0; kk < KT; kk++)
#pragma unroll
        for (int nn = 0; nn < 2; nn++) {
          uint32_t bf[2];
          frag_b(bf, Ks, LDK, kc * 16 + nn * 8, kk * 16, lane);
          mma(s[nn], qa[kk], bf);
          frag_b(bf, Vs, LDK, kc * 16 + nn * 8, kk * 16, lane);
          mma(dp[nn], ga[kk], bf);
        }
      const bool mask = partly_hidden(a, wg0, wg1, jc, jc + 15);
#pragma unroll
      for (int nn = 0; nn < 2; nn++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int half = e / 2, gi = wg0 + g + 8 * half, j = jc + nn * 8 + 2 * t + e % 2;
          float p = exp2f(s[nn][e] * a.scale2 - lse2[half]);
          if (mask && hidden(a, gi, j)) p = 0.f;
          s[nn][e] = a.scale * p * (dp[nn][e] - dl[half]); /* dS */
        }
      uint32_t dsa[4];
      c_to_a(dsa, s[0], s[1]);
#pragma unroll
      for (int n = 0; n < OT; n++) {
        uint32_t bf[2];
        frag_b(bf, Kt, LDT, n * 8, kc * 16, lane);
        mma(acc[n], dsa, bf);
      }
    }
  }

  if (w0 >= nq) return;
#pragma unroll
  for (int half = 0; half < 2; half++) {
    const int r = w0 + g + 8 * half;
    if (r < nq)
      store_c_row<D>(gq + ((b * (int64_t)a.T + i0 + r) * a.H + h) * D, acc, half, 1.f, t, true);
  }
}

/* dK and dV: one block per (key tile of B_ROWS, b, h), the tiles with the most queries first,
 * walks the query tiles of BR that see its keys. Warp w owns keys 16 w.., their K and V as A
 * fragments (in registers where HOLD, else read from shared memory at each use); per 16 queries
 * it forms S^T = K Q^T and dP^T = V dO^T (B operands: the rows of Q and dO), P^T and dS^T in f32,
 * and sums dV += P^T dO and dK += dS^T Q (B operands: dO^T and Q^T). Shared memory: K, V
 * [B_ROWS][D+8], Q, dO [BR][D+8], Q^T, dO^T [D][BR+8], lse (base 2) and delta [BR] in f32. */
template <int D, int BR, bool HOLD>
__global__ void __launch_bounds__(B_WARPS * 32, K_BLOCKS<D>)
    attention_backward_dkdv_bf16(bf_shape a, const float *q, const float *k, const float *v,
                                 const float *go, const float *lse, const float *delta, float *gk,
                                 float *gv) {
  constexpr int THREADS = B_WARPS * 32, BC = B_ROWS, LDK = D + 8, LDT = BR + 8, KT = D / 16,
                OT = D / 8;
  extern __shared__ float4 shm[];
  uint16_t *Ks = reinterpret_cast<uint16_t *>(shm), *Vs = Ks + BC * LDK, *Qs = Vs + BC * LDK,
           *Gs = Qs + BR * LDK, *Qt = Gs + BR * LDK, *Gt = Qt + D * LDT;
  float *Ls = reinterpret_cast<float *>(Gt + D * LDT), *Ds = Ls + BR;
  const int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int b = (int)blockIdx.x / a.H, h = (int)blockIdx.x % a.H;
  const int j0 = (int)blockIdx.y * BC, nk = min(BC, a.Tk - j0), j_last = j0 + nk - 1;
  /* The queries (positions) that see a key of the tile: from j0 on, and within the window. */
  const int g_begin = max(j0, a.q_offset),
            g_end = a.window > 0 ? min(a.q_offset + a.T, j_last + a.window) : a.q_offset + a.T;
  if (g_begin >= g_end) return; /* no query sees these keys: += 0 */
  const int i_begin = (g_begin - a.q_offset) / BR * BR, i_end = g_end - a.q_offset;
  const int w0 = warp * 16, wj0 = j0 + w0, wj1 = wj0 + 15; /* the warp's keys */
  const int64_t ldg = (int64_t)a.H * D;
  const float *qb = q + b * a.qs[0] + h * a.qs[2], *kb = k + b * a.ks[0] + h * a.ks[2],
              *vb = v + b * a.vs[0] + h * a.vs[2];
  const float *gob = go + ((int64_t)b * a.T * a.H + h) * D;
  const float *lse_bh = lse + ((int64_t)b * a.H + h) * a.T, *delta_bh = delta + (lse_bh - lse);

  stage_rows<BC, D, THREADS>(Ks, LDK, kb + j0 * a.ks[1], a.ks[1], nk);
  stage_rows<BC, D, THREADS>(Vs, LDK, vb + j0 * a.vs[1], a.vs[1], nk);
  __syncthreads();
  uint32_t ka[HOLD ? KT : 1][4], va[HOLD ? KT : 1][4];
  if constexpr (HOLD) {
#pragma unroll
    for (int kk = 0; kk < KT; kk++) {
      frag_a(ka[kk], Ks, LDK, w0, kk * 16, lane);
      frag_a(va[kk], Vs, LDK, w0, kk * 16, lane);
    }
  }
  float acc_k[OT][4], acc_v[OT][4];
#pragma unroll
  for (int n = 0; n < OT; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) acc_k[n][e] = acc_v[n][e] = 0.f;

  for (int i0 = i_begin; i0 < i_end; i0 += BR) {
    const int nq = min(BR, a.T - i0), gi0 = a.q_offset + i0;
    __syncthreads(); /* the last query tile is read */
    stage_rows<BR, D, THREADS>(Qs, LDK, qb + i0 * a.qs[1], a.qs[1], nq);
    stage_rows<BR, D, THREADS>(Gs, LDK, gob + i0 * ldg, ldg, nq);
    stage_cols<BR, D, THREADS>(Qt, LDT, qb + i0 * a.qs[1], a.qs[1], nq);
    stage_cols<BR, D, THREADS>(Gt, LDT, gob + i0 * ldg, ldg, nq);
    for (int i = (int)threadIdx.x; i < BR; i += THREADS) {
      Ls[i] = i < nq ? lse_bh[i0 + i] * LOG2E : 0.f;
      Ds[i] = i < nq ? delta_bh[i0 + i] : 0.f;
    }
    __syncthreads();
    if (w0 >= nk) continue;

#pragma unroll
    for (int qc = 0; qc < BR / 16; qc++) {
      const int c0 = qc * 16, gc0 = gi0 + c0, gc1 = gi0 + min(c0 + 15, nq - 1);
      if (c0 >= nq || unseen(a, gc0, gc1, wj0, wj1)) continue;
      float s[2][4] = {}, dp[2][4] = {};
#pragma unroll
      for (int kk = 0; kk < KT; kk++) {
        uint32_t kf[4], vf[4];
        if constexpr (HOLD) {
#pragma unroll
          for (int e = 0; e < 4; e++) {
            kf[e] = ka[kk][e];
            vf[e] = va[kk][e];
          }
        } else {
          frag_a(kf, Ks, LDK, w0, kk * 16, lane);
          frag_a(vf, Vs, LDK, w0, kk * 16, lane);
        }
#pragma unroll
        for (int nn = 0; nn < 2; nn++) {
          uint32_t bf[2];
          frag_b(bf, Qs, LDK, c0 + nn * 8, kk * 16, lane);
          mma(s[nn], kf, bf);
          frag_b(bf, Gs, LDK, c0 + nn * 8, kk * 16, lane);
          mma(dp[nn], vf, bf);
        }
      }
      const bool mask = nq - c0 < 16 || partly_hidden(a, gc0, gc1, wj0, wj1);
#pragma unroll
      for (int nn = 0; nn < 2; nn++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int j = wj0 + g + 8 * (e / 2), c = c0 + nn * 8 + 2 * t + e % 2;
          float p = exp2f(s[nn][e] * a.scale2 - Ls[c]);
          if (mask && (c >= nq || hidden(a, gi0 + c, j))) p = 0.f;
          s[nn][e] = p;
          dp[nn][e] = a.scale * p * (dp[nn][e] - Ds[c]); /* dS^T */
        }
      uint32_t pa[4], dsa[4];
      c_to_a(pa, s[0], s[1]);
      c_to_a(dsa, dp[0], dp[1]);
#pragma unroll
      for (int n = 0; n < OT; n++) {
        uint32_t bf[2];
        frag_b(bf, Gt, LDT, n * 8, c0, lane);
        mma(acc_v[n], pa, bf);
        frag_b(bf, Qt, LDT, n * 8, c0, lane);
        mma(acc_k[n], dsa, bf);
      }
    }
  }

#pragma unroll
  for (int half = 0; half < 2; half++) {
    const int r = w0 + g + 8 * half;
    if (r >= nk) continue;
    const int64_t off = ((b * (int64_t)a.Tk + j0 + r) * a.H + h) * D;
    if (gk) store_c_row<D>(gk + off, acc_k, half, 1.f, t, true);
    if (gv) store_c_row<D>(gv + off, acc_v, half, 1.f, t, true);
  }
}

/* Raise a kernel's dynamic shared memory limit once (per instantiation) past the default 48 KiB. */
template <typename Kernel> void allow_shared(Kernel kernel, size_t bytes, bool *done) {
  if (*done || bytes <= 48 * 1024) return;
  HY_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
  *done = true;
}

/* Tiles of `rows` over n, as the grid's y (at most 65535). */
unsigned tiles(int64_t n, int rows) {
  int64_t t = (n + rows - 1) / rows;
  if (t > 65535)
    hy_die("attention", "%lld rows in tiles of %d: more than 65535 tiles", (long long)n, rows);
  return (unsigned)t;
}

struct bf_launch {
  bf_shape a;
  int B;
};

bf_launch launch_of(const hy_attn_dims *d) {
  bf_launch L;
  L.a.T = (int)d->T;
  L.a.Tk = (int)d->Tk;
  L.a.H = (int)d->H;
  L.a.q_offset = (int)d->q_offset;
  L.a.window = d->window > d->Tk ? 0 : (int)d->window; /* a window past every key: none */
  for (int i = 0; i < 3; i++) {
    L.a.qs[i] = d->q_stride[i];
    L.a.ks[i] = d->k_stride[i];
    L.a.vs[i] = d->v_stride[i];
  }
  L.a.scale = (float)d->scale;
  L.a.scale2 = (float)(d->scale * 1.4426950408889634);
  L.B = (int)d->B;
  return L;
}

/* Key tiles of the forward: 32, which keeps the scores, the next tile's loads and O within the
 * registers of 2 blocks an SM at D = 64. */
constexpr int F_BC = 32;

template <int D>
void forward(const bf_launch &L, const float *q, const float *k, const float *v, float *o,
             float *lse) {
  constexpr int BC = F_BC;
  static bool done;
  auto kernel = attention_forward_bf16<D, BC>;
  size_t bytes = sizeof(uint16_t) * (size_t)(BC * (D + 8) + D * (BC + 8));
  allow_shared(kernel, bytes, &done);
  dim3 grid((unsigned)(L.B * L.a.H), tiles(L.a.T, F_BR));
  kernel<<<grid, F_WARPS * 32, bytes>>>(L.a, q, k, v, o, lse);
  HY_CUDA_LAUNCHED(attention_forward_bf16);
}

template <int D>
void backward(const bf_launch &L, const float *q, const float *k, const float *v, const float *go,
              const float *lse, const float *delta, float *gq, float *gk, float *gv) {
  constexpr int BC = 64, BR = 64, BK = B_ROWS;
  if (gk || gv) {
    static bool done;
    auto kernel = attention_backward_dkdv_bf16<D, BR, D == 64>;
    size_t bytes =
        sizeof(uint16_t) * (size_t)(2 * BK * (D + 8) + 2 * BR * (D + 8) + 2 * D * (BR + 8)) +
        sizeof(float) * 2 * BR;
    allow_shared(kernel, bytes, &done);
    dim3 grid((unsigned)(L.B * L.a.H), tiles(L.a.Tk, BK));
    kernel<<<grid, B_WARPS * 32, bytes>>>(L.a, q, k, v, go, lse, delta, gk, gv);
    HY_CUDA_LAUNCHED(attention_backward_dkdv_bf16);
  }
  if (gq) {
    static bool done;
    auto kernel = attention_backward_dq_bf16<D, BC>;
    size_t bytes = sizeof(uint16_t) * (size_t)(2 * BC * (D + 8) + D * (BC + 8));
    allow_shared(kernel, bytes, &done);
    dim3 grid((unsigned)(L.B * L.a.H), tiles(L.a.T, B_ROWS));
    kernel<<<grid, B_WARPS * 32, bytes>>>(L.a, q, k, v, go, lse, delta, gq);
    HY_CUDA_LAUNCHED(attention_backward_dq_bf16);
  }
}

} // namespace

extern "C" bool cuda_attention_bf16_head(int64_t D) { return D == 64 || D == 128; }

extern "C" void cuda_attention_bf16(const hy_attn_dims *dims, const float *q, const float *k,
                                    const float *v, float *o, float *lse) {
  bf_launch L = launch_of(dims);
  if (dims->D == 64)
    forward<64>(L, q, k, v, o, lse);
  else
    forward<128>(L, q, k, v, o, lse);
}

extern "C" void cuda_attention_backward_bf16(const hy_attn_dims *dims, const float *q,
                                             const float *k, const float *v, const float *go,
                                             const float *lse, const float *delta, float *gq,
                                             float *gk, float *gv) {
  bf_launch L = launch_of(dims);
  if (dims->D == 64)
    backward<64>(L, q, k, v, go, lse, delta, gq, gk, gv);
  else
    backward<128>(L, q, k, v, go, lse, delta, gq, gk, gv);
}
