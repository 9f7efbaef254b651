#include "tensor/cuda/attention_bf16.h"
#include "tensor/cuda/attention_shape.cuh"
#include "tensor/cuda/common.cuh"
#include "tensor/cuda/limits.h"

#include <cuda_bf16.h>
#include <math.h>

/* Causal softmax attention of bf16 tensors with its matmuls on the tensor cores: bf16 operands,
 * f32 sums (mma.sync m16n8k16), for head sizes 64 and 128. Same semantics and layouts as the f32
 * kernels of attention.cu (o and the gradients contiguous [B, T, H, D], lse [B, H, T], q, k, v
 * rows by their strides, queries at q_offset against Tk keys, the window rule
 * t - window < s <= t). The kernels read q, k, v, dO in place, bf16 as they are: the operands a
 * kernel streams through shared memory (k, v; q and dO for dK dV) by cp.async from their strided
 * rows, those a warp holds for the whole pass (q, dO in the forward and dQ) straight into fragment
 * registers. P and dS are rounded from their f32 values in registers. The softmax statistics
 * (lse, delta) are f32; o and the gradients are rounded to bf16 once, on their store (a gradient
 * added to is read, summed in f32 and rounded once).
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
 * Tiles are staged once, row-major ([rows][D], rows padded by 8 bf16), by cp.async 16-byte
 * copies (so every row of q, k, v, dO starts 16-byte aligned: attention_bf16.h), double-buffered:
 * the next tile's copies are in flight while the current one is multiplied. Fragments come from
 * shared memory by ldmatrix.x4, which loads four 8 x 8 b16 matrices: lanes 8i..8i+7 give the
 * addresses of matrix i's 8 rows (16 bytes each), and register i of lane 4g + t receives matrix i's
 * row g, columns 2t, 2t+1 (with .trans: column g, rows 2t, 2t+1, row 2t in the low half). So an A
 * fragment is the four 8 x 8 quarters of its 16 x 16 block; a B operand stored n-major (row n holds
 * B[., n]: K for Q K^T, V for dO V^T, Q and dO for K Q^T and V dO^T) is read plainly, and one
 * stored k-major (row k holds B[k, .]: V for P V, K for dS K, dO and Q for P^T dO and dS^T Q) with
 * .trans. Rows of D + 8 bf16 are an odd number of 16-byte units apart (9, 17), so the 8 rows of one
 * matrix fall on 8 different groups of 4 banks: conflict free. */

namespace {

/* The call's shape, with the row strides over t of q, k, v in 16-byte units (8 bf16): the
 * copies address rows by 32-bit offsets in these units from the tensor's start (shape_of checks
 * that every offset fits), which takes one register per operand where a pointer takes two. */
struct bf_shape : attn_shape {
  uint32_t qld, kld, vld;
};

/* The 16-byte offset of head (b, h) of a tensor with strides s (over b, t, h). */
__device__ __forceinline__ uint32_t head16(const int64_t (&s)[3], int b, int h) {
  return (uint32_t)((b * s[0] + h * s[2]) / 8);
}

/* No query of positions g0..g1 sees a key of j0..j1: the keys all come later, or all lie before
 * the window of the first query. */
__device__ __forceinline__ bool unseen(const attn_shape &a, int g0, int g1, int j0, int j1) {
  return j0 > g1 || (a.window > 0 && g0 - j1 >= a.window);
}

/* Some query of g0..g1 does not see some key of j0..j1: the elements need the mask. */
__device__ __forceinline__ bool partly_hidden(const attn_shape &a, int g0, int g1, int j0, int j1) {
  return j1 > g0 || (a.window > 0 && g1 - j0 >= a.window);
}

/* Two floats rounded to bf16 (nearest even) in one register, lo in the low half. */
__device__ __forceinline__ uint32_t pack(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return (uint32_t)__bfloat16_as_ushort(v.x) | ((uint32_t)__bfloat16_as_ushort(v.y) << 16);
}

/* d += a b on the tensor cores: A 16 x 16 bf16, B 16 x 8 bf16 (b0, b1), D 16 x 8 f32. */
__device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                    uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t shared_addr(const void *p) {
  return (uint32_t)__cvta_generic_to_shared(p);
}

/* 16 bytes global -> shared without registers (cached in L2 only); !ok: 16 zero bytes, nothing
 * read. */
__device__ __forceinline__ void copy16(void *s, const void *g, bool ok) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_addr(s)), "l"(g),
               "r"(ok ? 16 : 0)
               : "memory");
}

/* 4 bytes likewise (lse, delta); !ok: zero. */
__device__ __forceinline__ void copy4(void *s, const void *g, bool ok) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(shared_addr(s)), "l"(g),
               "r"(ok ? 4 : 0)
               : "memory");
}

__device__ __forceinline__ void copies_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}

/* Wait until at most N of this thread's committed groups are still in flight (groups complete
 * in order); the block then needs a __syncthreads to see the others' copies. */
template <int N> __device__ __forceinline__ void copies_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void ldsm4(uint32_t (&r)[4], const uint16_t *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_addr(p)));
}

__device__ __forceinline__ void ldsm4_trans(uint32_t (&r)[4], const uint16_t *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_addr(p)));
}

/* The A fragment of rows r0.. and columns k0.. of a row-major bf16 tile (rows ld apart).
 * Matrices: 0 (rows +0, cols +0) = reg 0, 1 (+8, +0) = reg 1, 2 (+0, +8) = reg 2, 3 (+8, +8) =
 * reg 3; lane l gives row r0 + l % 8 + 8 (l / 8 % 2), column k0 + 8 (l / 16). */
__device__ __forceinline__ void frag_a(uint32_t (&a)[4], const uint16_t *s, int ld, int r0, int k0,
                                       int lane) {
  ldsm4(a, s + (r0 + lane % 8 + 8 * (lane / 8 % 2)) * ld + k0 + 8 * (lane / 16));
}

/* The B fragments (k0.. by n0.. and by n0 + 8..) of a tile stored n-major: row n holds B[., n]
 * along k. b[0], b[1] are n-tile n0's regs 0, 1; b[2], b[3] n-tile n0 + 8's. Matrices: 0 (rows
 * n0 +0, cols k0 +0), 1 (+0, +8), 2 (+8, +0), 3 (+8, +8); lane l gives row n0 + l % 8 + 8 (l / 16),
 * column k0 + 8 (l / 8 % 2). Register i of lane 4g + t: B[k0 + 2t (+8), n g], as mma wants. */
__device__ __forceinline__ void frags_b(uint32_t (&b)[4], const uint16_t *s, int ld, int n0, int k0,
                                        int lane) {
  ldsm4(b, s + (n0 + lane % 8 + 8 * (lane / 16)) * ld + k0 + 8 * (lane / 8 % 2));
}

/* The same two B fragments from a tile stored k-major (row k holds B[k, .] along n), transposed
 * on the way: matrices 0 (rows k0 +0, cols n0 +0), 1 (+8, +0), 2 (+0, +8), 3 (+8, +8); lane l
 * gives row k0 + l % 8 + 8 (l / 8 % 2), column n0 + 8 (l / 16). With .trans register i of lane
 * 4g + t holds the matrix's rows 2t, 2t + 1 at column g: B[k0 + 2t (+8), n0 + g]. */
__device__ __forceinline__ void frags_b_trans(uint32_t (&b)[4], const uint16_t *s, int ld, int k0,
                                              int n0, int lane) {
  ldsm4_trans(b, s + (k0 + lane % 8 + 8 * (lane / 8 % 2)) * ld + n0 + 8 * (lane / 16));
}

/* Rows r0..r0 + ROWS - 1 of one head (n rows of D bf16, row r at 16-byte unit base + r ld of g)
 * into a row-major tile, rows D + 8 apart: cp.async, 16 bytes a copy, a warp's lanes along whole
 * rows. Rows from n on are zero-filled (they read as zero keys, queries, values). Commits
 * nothing. */
template <int ROWS, int D, int THREADS>
__device__ __forceinline__ void stage(uint16_t *s, const uint4 *g, uint32_t base, uint32_t ld,
                                      int r0, int n) {
  constexpr int C = D / 8, RS = THREADS / C, N = ROWS / RS; /* RS rows a pass */
  static_assert(THREADS % C == 0 && ROWS % RS == 0, "whole rows per pass, whole passes");
  const int r = (int)threadIdx.x / C, c = (int)threadIdx.x % C;
  uint32_t at = base + (uint32_t)(r0 + r) * ld + c;
#pragma unroll
  for (int p = 0; p < N; p++, at += RS * ld) {
    const bool ok = r0 + r + p * RS < n;
    copy16(s + (r + p * RS) * (D + 8) + c * 8, g + (ok ? at : base), ok);
  }
}

/* Query tile i0 of the dK dV pass into a stage: Q, dO [BR][D+8] at Qs (dO TILE after it) from
 * their rows (as for stage), lse and delta [BR] (f32 as they are) at Ls (delta BR after it), rows
 * from T on zero. Commits nothing. */
template <int BR, int D, int THREADS>
__device__ __forceinline__ void stage_queries(uint16_t *Qs, float *Ls, const uint4 *q, uint32_t qb,
                                              uint32_t qld, const uint4 *go, uint32_t gb,
                                              uint32_t gld, const float *lse_bh,
                                              const float *delta_bh, int i0, int T) {
  stage<BR, D, THREADS>(Qs, q, qb, qld, i0, T);
  stage<BR, D, THREADS>(Qs + BR * (D + 8), go, gb, gld, i0, T);
  for (int i = (int)threadIdx.x; i < BR; i += THREADS) {
    const bool ok = i0 + i < T;
    copy4(Ls + i, lse_bh + (ok ? i0 + i : 0), ok);
    copy4(Ls + BR + i, delta_bh + (ok ? i0 + i : 0), ok);
  }
}

__device__ __forceinline__ uint32_t ld32(const uint16_t *p) {
  return *reinterpret_cast<const uint32_t *>(p);
}

/* The A fragments of 16 rows of a bf16 matrix in global memory (rows `stride` elements apart, the
 * first n real, zeros after), all KT of its 16-column steps: straight to registers, two bf16 a
 * load. */
template <int KT>
__device__ __forceinline__ void frags_a_global(uint32_t (&a)[KT][4], const uint16_t *g, int stride,
                                               int n, int lane) {
  const int r = lane / 4, c = 2 * (lane % 4);
  const bool ok0 = r < n, ok1 = r + 8 < n;
  const uint16_t *p0 = ok0 ? g + r * stride : g, *p1 = ok1 ? g + (r + 8) * stride : g;
#pragma unroll
  for (int kk = 0; kk < KT; kk++) {
    a[kk][0] = ok0 ? ld32(p0 + kk * 16 + c) : 0u;
    a[kk][1] = ok1 ? ld32(p1 + kk * 16 + c) : 0u;
    a[kk][2] = ok0 ? ld32(p0 + kk * 16 + c + 8) : 0u;
    a[kk][3] = ok1 ? ld32(p1 + kk * 16 + c + 8) : 0u;
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

/* Two bf16 of one register as floats. */
__device__ __forceinline__ float2 unpack(uint32_t x) {
  return make_float2(__uint_as_float(x << 16), __uint_as_float(x & 0xffff0000u));
}

/* out[row, 2t..2t+1 + 8n] (+)= mul times the thread's two C columns of each of the D/8 tiles of
 * one bf16 row, summed in f32 and rounded once. */
template <int D>
__device__ __forceinline__ void store_c_row(uint16_t *row, const float (&acc)[D / 8][4], int half,
                                            float mul, int t, bool add) {
#pragma unroll
  for (int n = 0; n < D / 8; n++) {
    uint32_t *p = reinterpret_cast<uint32_t *>(row + n * 8 + 2 * t);
    float2 v = add ? unpack(*p) : make_float2(0.f, 0.f);
    *p = pack(v.x + acc[n][2 * half] * mul, v.y + acc[n][2 * half + 1] * mul);
  }
}

constexpr int F_WARPS = 8, F_BR = 16 * F_WARPS;   /* forward: 128 queries a block */
constexpr int B_WARPS = 4, B_ROWS = 16 * B_WARPS; /* backward: 64 queries or keys a block */
static_assert(F_BR >= HY_CUDA_ATTN_NARROW_ROWS && B_ROWS >= HY_CUDA_ATTN_NARROW_ROWS,
              "tile rows below tensor/cuda/limits.h's");
/* Blocks per SM the register budget is cut for (forward, dQ, dK dV): left to itself the compiler
 * keeps a tile's worth of fragments in flight and one block fills the register file. Each is the
 * most that spills nothing (ptxas -v). dK dV could hold K and V in registers (a third fewer
 * shared memory reads) but then fits 2 blocks at D = 64, not 3; on an H200 the 3 blocks reading
 * K and V from shared memory were faster (forward + backward 1.76 against 1.81 ms at B 8, T 2048,
 * H 16), so it reads them from shared memory at each use. */
template <int D> constexpr int F_BLOCKS = D == 64 ? 2 : 1;
template <int D> constexpr int Q_BLOCKS = D == 64 ? 4 : 2;
template <int D> constexpr int K_BLOCKS = D == 64 ? 3 : 2;

/* Forward: o = softmax(scale q k^T, causal) v, lse = the rows' log-sum-exps, online softmax in
 * f32. Grid (B H, query tiles of F_BR), the tiles with the most keys first; warp w owns queries
 * 16 w .. 16 w + 15 of the tile, its Q as A fragments in registers for the whole pass, its O as
 * D/8 C tiles. Key tiles of BC walk through shared memory, two stages of K, V [BC][D+8] from
 * their rows: K is the B operand of Q K^T (n-major), V that of P V (k-major, .trans). */
template <int D, int BC>
__global__ void __launch_bounds__(F_WARPS * 32, F_BLOCKS<D>)
    attention_forward_bf16(bf_shape a, const uint16_t *q, const uint16_t *k, const uint16_t *v,
                           uint16_t *o, float *lse) {
  constexpr int THREADS = F_WARPS * 32, LD = D + 8, KT = D / 16, NT = BC / 8, OT = D / 8,
                TILE = BC * LD;
  extern __shared__ float4 shm[];
  uint16_t *sm = reinterpret_cast<uint16_t *>(shm); /* stage s: K at 2 s TILE, V after it */
  const int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int b = (int)blockIdx.x / a.H, h = (int)blockIdx.x % a.H;
  const int i0 = (int)(gridDim.y - 1 - blockIdx.y) * F_BR, nq = min(F_BR, a.T - i0);
  const int gi0 = a.q_offset + i0, gi_last = gi0 + nq - 1;
  const int j_begin = first_key_tile<BC>(a, gi0), j_end = gi_last + 1;
  const int n_tiles = (j_end - j_begin + BC - 1) / BC;
  const int w0 = warp * 16, wg0 = gi0 + w0, wg1 = min(wg0 + 15, gi_last); /* the warp's rows */
  const uint4 *k16 = reinterpret_cast<const uint4 *>(k), *v16 = reinterpret_cast<const uint4 *>(v);
  const uint32_t kb = head16(a.ks, b, h), vb = head16(a.vs, b, h);

  stage<BC, D, THREADS>(sm, k16, kb, a.kld, j_begin, a.Tk);
  stage<BC, D, THREADS>(sm + TILE, v16, vb, a.vld, j_begin, a.Tk);
  copies_commit();

  uint32_t qa[KT][4];
  frags_a_global<KT>(qa, q + b * a.qs[0] + h * a.qs[2] + (int64_t)(i0 + w0) * a.qs[1], (int)a.qs[1],
                     nq - w0, lane);
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f}, acc[OT][4];
#pragma unroll
  for (int n = 0; n < OT; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;

  for (int it = 0; it < n_tiles; it++) {
    const int j0 = j_begin + it * BC;
    if (it + 1 < n_tiles) { /* the next tile into the other stage, read two iterations ago */
      uint16_t *next = sm + ((it + 1) & 1) * 2 * TILE;
      stage<BC, D, THREADS>(next, k16, kb, a.kld, j0 + BC, a.Tk);
      stage<BC, D, THREADS>(next + TILE, v16, vb, a.vld, j0 + BC, a.Tk);
      copies_commit();
      copies_wait<1>();
    } else {
      copies_wait<0>();
    }
    __syncthreads(); /* this tile's copies, by every thread, have landed */
    const uint16_t *Ks = sm + (it & 1) * 2 * TILE, *Vs = Ks + TILE;

    if (w0 < nq && !unseen(a, wg0, wg1, j0, j0 + BC - 1)) {
      float s[NT][4];
#pragma unroll
      for (int n = 0; n < NT; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < KT; kk++)
#pragma unroll
        for (int n = 0; n < NT; n += 2) {
          uint32_t bf[4];
          frags_b(bf, Ks, LD, n * 8, kk * 16, lane);
          mma(s[n], qa[kk], bf[0], bf[1]);
          mma(s[n + 1], qa[kk], bf[2], bf[3]);
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
        for (int n = 0; n < OT; n += 2) {
          uint32_t bf[4];
          frags_b_trans(bf, Vs, LD, kc * 16, n * 8, lane);
          mma(acc[n], pa, bf[0], bf[1]);
          mma(acc[n + 1], pa, bf[2], bf[3]);
        }
      }
    }
    __syncthreads(); /* the tile is read: the next iteration's copies may overwrite it */
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
 * key tiles its queries see. Warp w owns queries 16 w.., their Q and dO (from global memory) as
 * A fragments in registers; per 16 keys it forms S = Q K^T and dP = dO V^T (B operands: the rows
 * of K and V), P = exp(scale S - lse), dS = scale P (dP - delta) in f32, and sums dQ += dS K
 * (B operand: K k-major, .trans), then adds it to gq or writes it over gq (add). Shared memory:
 * two stages of K, V [BC][D+8]. */
template <int D, int BC>
__global__ void __launch_bounds__(B_WARPS * 32, Q_BLOCKS<D>)
    attention_backward_dq_bf16(bf_shape a, const uint16_t *q, const uint16_t *k, const uint16_t *v,
                               const uint16_t *go, const float *lse, const float *delta,
                               uint16_t *gq, bool add) {
  constexpr int THREADS = B_WARPS * 32, LD = D + 8, KT = D / 16, OT = D / 8, TILE = BC * LD;
  extern __shared__ float4 shm[];
  uint16_t *sm = reinterpret_cast<uint16_t *>(shm); /* stage s: K at 2 s TILE, V after it */
  const int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int b = (int)blockIdx.x / a.H, h = (int)blockIdx.x % a.H;
  const int i0 = (int)(gridDim.y - 1 - blockIdx.y) * B_ROWS, nq = min(B_ROWS, a.T - i0);
  const int gi0 = a.q_offset + i0, gi_last = gi0 + nq - 1;
  const int j_begin = first_key_tile<BC>(a, gi0), j_end = gi_last + 1;
  const int n_tiles = (j_end - j_begin + BC - 1) / BC;
  const int w0 = warp * 16, wg0 = gi0 + w0, wg1 = min(wg0 + 15, gi_last);
  const int ldg = a.H * D;
  const uint4 *k16 = reinterpret_cast<const uint4 *>(k), *v16 = reinterpret_cast<const uint4 *>(v);
  const uint32_t kb = head16(a.ks, b, h), vb = head16(a.vs, b, h);
  const float *lse_bh = lse + ((int64_t)b * a.H + h) * a.T, *delta_bh = delta + (lse_bh - lse);

  stage<BC, D, THREADS>(sm, k16, kb, a.kld, j_begin, a.Tk);
  stage<BC, D, THREADS>(sm + TILE, v16, vb, a.vld, j_begin, a.Tk);
  copies_commit();

  uint32_t qa[KT][4], ga[KT][4];
  frags_a_global<KT>(qa, q + b * a.qs[0] + h * a.qs[2] + (int64_t)(i0 + w0) * a.qs[1], (int)a.qs[1],
                     nq - w0, lane);
  frags_a_global<KT>(ga, go + (((int64_t)b * a.T + i0 + w0) * a.H + h) * D, ldg, nq - w0, lane);
  float lse2[2], dl[2], acc[OT][4];
#pragma unroll
  for (int half = 0; half < 2; half++) {
    const int r = w0 + g + 8 * half;
    lse2[half] = r < nq ? lse_bh[i0 + r] * LOG2E : 0.f;
    dl[half] = r < nq ? delta_bh[i0 + r] : 0.f;
  }
#pragma unroll
  for (int n = 0; n < OT; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;

  for (int it = 0; it < n_tiles; it++) {
    const int j0 = j_begin + it * BC;
    if (it + 1 < n_tiles) {
      uint16_t *next = sm + ((it + 1) & 1) * 2 * TILE;
      stage<BC, D, THREADS>(next, k16, kb, a.kld, j0 + BC, a.Tk);
      stage<BC, D, THREADS>(next + TILE, v16, vb, a.vld, j0 + BC, a.Tk);
      copies_commit();
      copies_wait<1>();
    } else {
      copies_wait<0>();
    }
    __syncthreads();
    const uint16_t *Ks = sm + (it & 1) * 2 * TILE, *Vs = Ks + TILE;

    if (w0 < nq) {
#pragma unroll
      for (int kc = 0; kc < BC / 16; kc++) {
        const int jc = j0 + kc * 16;
        if (unseen(a, wg0, wg1, jc, jc + 15)) continue;
        float s[2][4] = {}, dp[2][4] = {};
#pragma unroll
        for (int kk = 0; kk < KT; kk++) {
          uint32_t bf[4];
          frags_b(bf, Ks, LD, kc * 16, kk * 16, lane);
          mma(s[0], qa[kk], bf[0], bf[1]);
          mma(s[1], qa[kk], bf[2], bf[3]);
          frags_b(bf, Vs, LD, kc * 16, kk * 16, lane);
          mma(dp[0], ga[kk], bf[0], bf[1]);
          mma(dp[1], ga[kk], bf[2], bf[3]);
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
        for (int n = 0; n < OT; n += 2) {
          uint32_t bf[4];
          frags_b_trans(bf, Ks, LD, kc * 16, n * 8, lane);
          mma(acc[n], dsa, bf[0], bf[1]);
          mma(acc[n + 1], dsa, bf[2], bf[3]);
        }
      }
    }
    __syncthreads();
  }

  if (w0 >= nq) return;
#pragma unroll
  for (int half = 0; half < 2; half++) {
    const int r = w0 + g + 8 * half;
    if (r < nq)
      store_c_row<D>(gq + ((b * (int64_t)a.T + i0 + r) * a.H + h) * D, acc, half, 1.f, t, add);
  }
}

/* dK and dV: one block per (key tile of B_ROWS, b, h), the tiles with the most queries first,
 * walks the query tiles of BR that see its keys. Warp w owns keys 16 w.., their K and V as A
 * fragments read from shared memory at each use; per 16 queries
 * it forms S^T = K Q^T and dP^T = V dO^T (B operands: Q and dO n-major), P^T and dS^T in f32,
 * and sums dV += P^T dO and dK += dS^T Q (B operands: dO and Q k-major, .trans), then adds them
 * to gk, gv or writes them over (add_k, add_v). Shared memory: K, V [B_ROWS][D+8] once, then two
 * stages of Q, dO [BR][D+8] and lse, delta [BR] (f32). */
template <int D, int BR>
__global__ void __launch_bounds__(B_WARPS * 32, K_BLOCKS<D>)
    attention_backward_dkdv_bf16(bf_shape a, const uint16_t *q, const uint16_t *k,
                                 const uint16_t *v, const uint16_t *go, const float *lse,
                                 const float *delta, uint16_t *gk, uint16_t *gv, bool add_k,
                                 bool add_v) {
  constexpr int THREADS = B_WARPS * 32, BC = B_ROWS, LD = D + 8, KT = D / 16, OT = D / 8,
                TILE = BR * LD;
  extern __shared__ float4 shm[];
  uint16_t *Ks = reinterpret_cast<uint16_t *>(shm), *Vs = Ks + BC * LD;
  uint16_t *qg = Vs + BC * LD;                           /* stage s: Q at 2 s TILE, dO after it */
  float *ld_ = reinterpret_cast<float *>(qg + 4 * TILE); /* stage s: lse at 2 s BR, delta after */
  const int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int b = (int)blockIdx.x / a.H, h = (int)blockIdx.x % a.H;
  const int j0 = (int)blockIdx.y * BC, nk = min(BC, a.Tk - j0), j_last = j0 + nk - 1;
  /* The queries (positions) that see a key of the tile: from j0 on, and within the window. */
  const int g_begin = max(j0, a.q_offset),
            g_end = a.window > 0 ? min(a.q_offset + a.T, j_last + a.window) : a.q_offset + a.T;
  const bool seen = g_begin < g_end; /* else the gradients are zero: += 0, or written */
  if (!seen && add_k && add_v) return;
  const int i_begin = seen ? (g_begin - a.q_offset) / BR * BR : 0,
            n_tiles = seen ? (g_end - a.q_offset - i_begin + BR - 1) / BR : 0;
  const int w0 = warp * 16, wj0 = j0 + w0, wj1 = wj0 + 15; /* the warp's keys */
  const float *lse_bh = lse + ((int64_t)b * a.H + h) * a.T, *delta_bh = delta + (lse_bh - lse);
  const int ldg = a.H * D;
  const uint4 *q16 = reinterpret_cast<const uint4 *>(q),
              *go16 = reinterpret_cast<const uint4 *>(go);
  const uint32_t qb = head16(a.qs, b, h), gb = (uint32_t)(((int64_t)b * a.T * a.H + h) * D / 8);

  if (seen) {
    stage<BC, D, THREADS>(Ks, reinterpret_cast<const uint4 *>(k), head16(a.ks, b, h), a.kld, j0,
                          a.Tk);
    stage<BC, D, THREADS>(Vs, reinterpret_cast<const uint4 *>(v), head16(a.vs, b, h), a.vld, j0,
                          a.Tk);
    copies_commit();
    stage_queries<BR, D, THREADS>(qg, ld_, q16, qb, a.qld, go16, gb, ldg / 8, lse_bh, delta_bh,
                                  i_begin, a.T);
    copies_commit();
  }
  float acc_k[OT][4], acc_v[OT][4];
#pragma unroll
  for (int n = 0; n < OT; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) acc_k[n][e] = acc_v[n][e] = 0.f;

  for (int it = 0; it < n_tiles; it++) {
    const int i0 = i_begin + it * BR, nq = min(BR, a.T - i0), gi0 = a.q_offset + i0;
    if (it + 1 < n_tiles) {
      const int st = (it + 1) & 1;
      stage_queries<BR, D, THREADS>(qg + st * 2 * TILE, ld_ + st * 2 * BR, q16, qb, a.qld, go16, gb,
                                    ldg / 8, lse_bh, delta_bh, i0 + BR, a.T);
      copies_commit();
      copies_wait<1>();
    } else {
      copies_wait<0>();
    }
    __syncthreads();
    const uint16_t *Qs = qg + (it & 1) * 2 * TILE, *Gs = Qs + TILE;
    const float *Ls = ld_ + (it & 1) * 2 * BR, *Ds = Ls + BR;

    if (w0 < nk) {
#pragma unroll
      for (int qc = 0; qc < BR / 16; qc++) {
        const int c0 = qc * 16, gc0 = gi0 + c0, gc1 = gi0 + min(c0 + 15, nq - 1);
        if (c0 >= nq || unseen(a, gc0, gc1, wj0, wj1)) continue;
        float s[2][4] = {}, dp[2][4] = {};
#pragma unroll
        for (int kk = 0; kk < KT; kk++) {
          uint32_t kf[4], vf[4], bf[4];
          frag_a(kf, Ks, LD, w0, kk * 16, lane);
          frag_a(vf, Vs, LD, w0, kk * 16, lane);
          frags_b(bf, Qs, LD, c0, kk * 16, lane);
          mma(s[0], kf, bf[0], bf[1]);
          mma(s[1], kf, bf[2], bf[3]);
          frags_b(bf, Gs, LD, c0, kk * 16, lane);
          mma(dp[0], vf, bf[0], bf[1]);
          mma(dp[1], vf, bf[2], bf[3]);
        }
        const bool mask = nq - c0 < 16 || partly_hidden(a, gc0, gc1, wj0, wj1);
#pragma unroll
        for (int nn = 0; nn < 2; nn++)
#pragma unroll
          for (int e = 0; e < 4; e++) {
            const int j = wj0 + g + 8 * (e / 2), c = c0 + nn * 8 + 2 * t + e % 2;
            float p = exp2f(s[nn][e] * a.scale2 - Ls[c] * LOG2E);
            if (mask && (c >= nq || hidden(a, gi0 + c, j))) p = 0.f;
            s[nn][e] = p;
            dp[nn][e] = a.scale * p * (dp[nn][e] - Ds[c]); /* dS^T */
          }
        uint32_t pa[4], dsa[4];
        c_to_a(pa, s[0], s[1]);
        c_to_a(dsa, dp[0], dp[1]);
#pragma unroll
        for (int n = 0; n < OT; n += 2) {
          uint32_t bf[4];
          frags_b_trans(bf, Gs, LD, c0, n * 8, lane);
          mma(acc_v[n], pa, bf[0], bf[1]);
          mma(acc_v[n + 1], pa, bf[2], bf[3]);
          frags_b_trans(bf, Qs, LD, c0, n * 8, lane);
          mma(acc_k[n], dsa, bf[0], bf[1]);
          mma(acc_k[n + 1], dsa, bf[2], bf[3]);
        }
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int half = 0; half < 2; half++) {
    const int r = w0 + g + 8 * half;
    if (r >= nk) continue;
    const int64_t off = ((b * (int64_t)a.Tk + j0 + r) * a.H + h) * D;
    if (gk) store_c_row<D>(gk + off, acc_k, half, 1.f, t, add_k);
    if (gv) store_c_row<D>(gv + off, acc_v, half, 1.f, t, add_v);
  }
}

/* Key tiles of the forward: 64, which keeps the scores and O of a warp within the registers of
 * 2 blocks an SM at D = 64. */
constexpr int F_BC = 64;

/* A [B, n, H, D] view with strides s (over b, t, h) whose rows start 16-byte aligned (cp.async's
 * pieces) at 16-byte offsets from x that fit 32 bits. */
bool rows16(const void *x, const int64_t *s, int64_t B, int64_t n, int64_t H, int64_t D) {
  if (((uintptr_t)x & 15) != 0 || s[0] % 8 != 0 || s[1] % 8 != 0 || s[2] % 8 != 0) return false;
  int64_t reach = (B - 1) * s[0] + (n - 1) * s[1] + (H - 1) * s[2] + D; /* all >= 0 here */
  return s[0] >= 0 && s[1] >= 0 && s[2] >= 0 && reach / 8 <= UINT32_MAX;
}

/* The call's shape, after checking what the kernels assume of it (attention_bf16.h). */
bf_shape shape_of(const hy_attn_dims *d, const void *q, const void *k, const void *v) {
  if (!cuda_attention_bf16_takes(d->B, d->T, d->Tk, d->H, d->D) ||
      !rows16(q, d->q_stride, d->B, d->T, d->H, d->D) ||
      !rows16(k, d->k_stride, d->B, d->Tk, d->H, d->D) ||
      !rows16(v, d->v_stride, d->B, d->Tk, d->H, d->D))
    hy_die("attention", "internal: bf16 q, k, v that the tensor-core kernels do not take "
                        "(tensor/cuda/attention_bf16.h)");
  bf_shape a;
  static_cast<attn_shape &>(a) = attn_shape_of(d);
  a.qld = (uint32_t)(d->q_stride[1] / 8);
  a.kld = (uint32_t)(d->k_stride[1] / 8);
  a.vld = (uint32_t)(d->v_stride[1] / 8);
  return a;
}

template <int D>
void forward(const hy_attn_dims *d, const uint16_t *q, const uint16_t *k, const uint16_t *v,
             uint16_t *o, float *lse) {
  constexpr int BC = F_BC;
  bf_shape a = shape_of(d, q, k, v);
  static bool done;
  auto kernel = attention_forward_bf16<D, BC>;
  size_t bytes = sizeof(uint16_t) * (size_t)(2 * 2 * BC * (D + 8));
  hy_allow_shared(kernel, bytes, &done);
  dim3 grid((unsigned)(d->B * d->H), tiles(d->T, F_BR));
  kernel<<<grid, F_WARPS * 32, bytes, hy_cuda_stream()>>>(a, q, k, v, o, lse);
  HY_CUDA_LAUNCHED(attention_forward_bf16);
}

/* dK and dV first, then dQ, as attention.cu's backward (where q, k, v are one tensor). */
template <int D>
void backward(const hy_attn_dims *d, const uint16_t *q, const uint16_t *k, const uint16_t *v,
              const uint16_t *go, const float *lse, const float *delta, uint16_t *gq, uint16_t *gk,
              uint16_t *gv) {
  constexpr int BC = 64, BR = 64, BK = B_ROWS;
  bf_shape a = shape_of(d, q, k, v);
  if (gk || gv) {
    static bool done;
    auto kernel = attention_backward_dkdv_bf16<D, BR>;
    size_t bytes = sizeof(uint16_t) * (size_t)(2 * BK * (D + 8) + 2 * 2 * BR * (D + 8)) +
                   sizeof(float) * 2 * 2 * BR;
    hy_allow_shared(kernel, bytes, &done);
    dim3 grid((unsigned)(d->B * d->H), tiles(d->Tk, BK));
    kernel<<<grid, B_WARPS * 32, bytes, hy_cuda_stream()>>>(a, q, k, v, go, lse, delta, gk, gv,
                                                            !(d->overwrite & HY_OVERWRITE_K),
                                                            !(d->overwrite & HY_OVERWRITE_V));
    HY_CUDA_LAUNCHED(attention_backward_dkdv_bf16);
  }
  if (gq) {
    static bool done;
    auto kernel = attention_backward_dq_bf16<D, BC>;
    size_t bytes = sizeof(uint16_t) * (size_t)(2 * 2 * BC * (D + 8));
    hy_allow_shared(kernel, bytes, &done);
    dim3 grid((unsigned)(d->B * d->H), tiles(d->T, B_ROWS));
    kernel<<<grid, B_WARPS * 32, bytes, hy_cuda_stream()>>>(a, q, k, v, go, lse, delta, gq,
                                                            !(d->overwrite & HY_OVERWRITE_Q));
    HY_CUDA_LAUNCHED(attention_backward_dq_bf16);
  }
}

} // namespace

extern "C" bool cuda_attention_bf16_takes(int64_t B, int64_t T, int64_t Tk, int64_t H, int64_t D) {
  int64_t n = T > Tk ? T : Tk;
  return (D == 64 || D == 128) && B * n * H * D / 8 <= UINT32_MAX && n <= INT32_MAX;
}

extern "C" bool cuda_attention_bf16_rows(const hy_tensor *t) {
  return t->ndim == 4 && t->stride[3] == 1 &&
         rows16(t->data, t->stride, t->shape[0], t->shape[1], t->shape[2], t->shape[3]);
}

extern "C" void cuda_attention_bf16(const hy_attn_dims *dims, const hy_bf16 *q, const hy_bf16 *k,
                                    const hy_bf16 *v, hy_bf16 *o, float *lse) {
  if (dims->T == 0 || dims->B * dims->H == 0) return;
  if (dims->D == 64)
    forward<64>(dims, q, k, v, o, lse);
  else
    forward<128>(dims, q, k, v, o, lse);
}

/* delta lives in the step arena until the kernels that read it are queued. */
extern "C" void cuda_attention_backward_bf16(const hy_attn_dims *dims, const hy_bf16 *q,
                                             const hy_bf16 *k, const hy_bf16 *v, const hy_bf16 *o,
                                             const float *lse, const hy_bf16 *go, hy_bf16 *gq,
                                             hy_bf16 *gk, hy_bf16 *gv) {
  if (dims->T == 0 || dims->B * dims->H == 0 || (!gq && !gk && !gv)) return;
  hy_arena_mark mark = hy_arena_get_mark();
  const float *delta =
      attention_deltas(dims, reinterpret_cast<const bf16 *>(o), reinterpret_cast<const bf16 *>(go));
  if (dims->D == 64)
    backward<64>(dims, q, k, v, go, lse, delta, gq, gk, gv);
  else
    backward<128>(dims, q, k, v, go, lse, delta, gq, gk, gv);
  hy_arena_rewind(mark);
}
