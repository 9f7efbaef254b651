#include "tensor/cuda/common.cuh"
#include "tensor/cuda/limits.h"
extern "C" {
#include "tensor/arena.h"
}

#include <math.h>

/* RAT on the GPU in f32: the twin of tensor/cpu/rat.c (the math: tensor/rat.c), with its layouts
 * (q, u, k, f, o and the gradients [B, T, H, D], lse [B, H, T]) and its accumulation of the
 * gradients (+=; any of them may be NULL).
 *
 * Forward: the RoPE table of the chunk angles ([P + n_chunks, D/2], computed in double as the CPU
 * does it); the gated recurrence, one thread per (b, chunk, h, channel pair i, i + D/2), writing
 * the running states xs, ks [B, T, H, D] and the rotated chunk keys kc [B, H, P + n_keys, D]: the
 * P earlier chunks' (hy_rat_after), then the slice's chunk-final ones; then the rows: a block of
 * 4 warps owns 16 query rows of one (b, h), 4 per warp, and walks the chunk keys in tiles of 32
 * staged in shared memory (keys kc, values vp or xs at the chunks' last rows). A warp scores its
 * row against the tile with one key per lane (each lane one dot product over D), then adds the
 * tile's values to the row's accumulator with the channels across lanes: an online softmax started
 * by the own running state, as on the CPU.
 *
 * Backward: the states again; the rows kernel recomputes each row's probabilities from lse and
 * writes dq (the own key's share and R^T of the chunk keys' dS K), plus three numbers per row for
 * the later kernels: p and dS of the own key and di = go . o. A keys kernel, one block per 32
 * chunk-final keys of one (b, h) and a group of 128 channels, walks the rows that see them
 * (32 at a time in shared memory) and sums dKc = dS^T Qr and dVc = P^T go; one reverse scan per
 * (b, chunk, h, channel pair) then gathers the state gradients (own key, chunk-final key and value,
 * the next token's carry), turns dKc back by R(c)^T and adds du, dk, df; the earlier chunks' dKc
 * and dVc go to kp (turned back) and vp.
 *
 * hy_rat_chunk_ends: one thread per (b, chunk, h, channel) runs the chunk's recurrence; its
 * backward stores the states in scratch on the way forward and walks them back.
 *
 * Every output element has one owner and every sum a fixed order: no atomics, and the results are
 * the same from run to run. Scratch lives in the step arena until the kernels are queued. */

namespace {

constexpr int KT = 32;          /* keys per staged tile: one per lane */
constexpr int WARPS = 4;        /* rows kernels: warps per block */
constexpr int RW = 4;           /* rows kernels: rows per warp */
constexpr int BR = WARPS * RW;  /* rows kernels: rows per block */
constexpr int KWARPS = 8;       /* keys kernel: warps per block */
constexpr int KA = KT / KWARPS; /* keys kernel: keys per thread */
constexpr int CG = 128;         /* keys kernel: channels per block */
constexpr int CE = CG / 32;     /* keys kernel: channels per thread */
constexpr int MAX_NP = 8;       /* channel pairs per lane: D <= 64 MAX_NP */
static_assert(2 * 32 * MAX_NP == HY_CUDA_RAT_HEAD_MAX, "tensor/cuda/limits.h");
constexpr unsigned FULL = 0xffffffffu;

struct rat_shape {
  int B, T, H, D, half, L, nk, nc;
  int P, keys; /* the earlier chunks; all chunk keys, P + nk */
  float scale;
};

/* Offset of token t of head h in batch b in a [B, T, H, D] tensor. */
__device__ __forceinline__ int64_t at(const rat_shape &s, int b, int t, int h) {
  return (((int64_t)b * s.T + t) * s.H + h) * s.D;
}

/* Offset of chunk key j of head bh (= b H + h) in a [B, H, P + n_keys, D] buffer. */
__device__ __forceinline__ int64_t key_at(const rat_shape &s, int bh, int j) {
  return ((int64_t)bh * s.keys + j) * s.D;
}

/* Offset of earlier chunk p of head h in batch b in a [B, P, H, D] tensor (kp, vp). */
__device__ __forceinline__ int64_t earlier_at(const rat_shape &s, int b, int p, int h) {
  return (((int64_t)b * s.P + p) * s.H + h) * s.D;
}

/* The chunk keys row t sees: the P earlier chunks' and its slice's chunks before its own; also
 * the index of its chunk for the RoPE. */
__device__ __forceinline__ int keys_of_row(const rat_shape &s, int t) { return s.P + t / s.L; }

/* The sum over the warp, in every lane: the xor butterfly adds the same pairs in all lanes. */
__device__ __forceinline__ float warp_all_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL, v, o);
  return v;
}

__device__ __forceinline__ float warp_all_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL, v, o));
  return v;
}

/* a . b over n floats, b a row of shared memory; a is the same for all lanes (a broadcast). */
__device__ __forceinline__ float dot_shared(const float *a, const float *b, int n) {
  float acc = 0.f;
  for (int d = 0; d < n; d++) acc = fmaf(a[d], b[d], acc);
  return acc;
}

/* cos and sin of chunk c's angles c theta^(-2i/D), in double as on the CPU. */
__global__ void rope_table(rat_shape s, double theta, float *cs, float *sn) {
  HY_GRID_STRIDE(x, (int64_t)(s.P + s.nc) * s.half) {
    int i = (int)(x % s.half), c = (int)(x / s.half);
    double angle = (double)c * pow(theta, -2.0 * (double)i / (double)s.D);
    cs[x] = (float)cos(angle);
    sn[x] = (float)sin(angle);
  }
}

/* The gated recurrence of one chunk for channels i and i + D/2 of one head: xs, ks at every token,
 * and for the chunks some query sees, the final key rotated by R(P + c) into kc. */
__global__ void states_kernel(rat_shape s, const float *u, const float *k, const float *f,
                              const float *cs, const float *sn, float *xs, float *ks, float *kc) {
  HY_GRID_STRIDE(x, (int64_t)s.B * s.nc * s.H * s.half) {
    int i = (int)(x % s.half);
    int64_t r = x / s.half;
    int h = (int)(r % s.H);
    r /= s.H;
    int c = (int)(r % s.nc), b = (int)(r / s.nc);
    int t0 = c * s.L, t1 = min(s.T, t0 + s.L);
    float x1 = 0.f, x2 = 0.f, k1 = 0.f, k2 = 0.f;
    for (int t = t0; t < t1; t++) {
      int64_t o1 = at(s, b, t, h) + i, o2 = o1 + s.half;
      float f1 = f[o1], f2 = f[o2];
      x1 = f1 * x1 + (1.f - f1) * u[o1];
      x2 = f2 * x2 + (1.f - f2) * u[o2];
      k1 = f1 * k1 + (1.f - f1) * k[o1];
      k2 = f2 * k2 + (1.f - f2) * k[o2];
      xs[o1] = x1;
      xs[o2] = x2;
      ks[o1] = k1;
      ks[o2] = k2;
    }
    if (c < s.nk) {
      int j = s.P + c;
      float co = cs[j * s.half + i], si = sn[j * s.half + i];
      float *kr = kc + key_at(s, b * s.H + h, j);
      kr[i] = k1 * co - k2 * si;
      kr[i + s.half] = k2 * co + k1 * si;
    }
  }
}

/* The earlier chunks' keys kp rotated by R(p) into kc, one thread per (b, p, h, channel pair). */
__global__ void earlier_keys(rat_shape s, const float *kp, const float *cs, const float *sn,
                             float *kc) {
  HY_GRID_STRIDE(x, (int64_t)s.B * s.P * s.H * s.half) {
    int i = (int)(x % s.half);
    int64_t r = x / s.half;
    int h = (int)(r % s.H);
    r /= s.H;
    int p = (int)(r % s.P), b = (int)(r / s.P);
    const float *kr = kp + earlier_at(s, b, p, h);
    float k1 = kr[i], k2 = kr[i + s.half], co = cs[p * s.half + i], si = sn[p * s.half + i];
    float *out = kc + key_at(s, b * s.H + h, p);
    out[i] = k1 * co - k2 * si;
    out[i + s.half] = k2 * co + k1 * si;
  }
}

/* Stage chunk keys j0 .. j0 + KT - 1 of head (b, h): Ks[j] = kc_j, Vs[j] = vp_j for an earlier
 * chunk, else xs at the last row (c + 1) L - 1 of the slice's chunk c = j - P; zero past the last
 * key. Rows LD = D + 1 apart (odd), so that lanes reading one row each hit different banks. */
__device__ void stage_keys(const rat_shape &s, int b, int h, int j0, const float *kc,
                           const float *vp, const float *xs, float *Ks, float *Vs) {
  int LD = s.D + 1;
  for (int x = (int)threadIdx.x; x < KT * s.D; x += (int)blockDim.x) {
    int j = x / s.D, d = x % s.D, c = j0 + j;
    bool in = c < s.keys;
    Ks[j * LD + d] = in ? kc[key_at(s, b * s.H + h, c) + d] : 0.f;
    Vs[j * LD + d] = !in       ? 0.f
                     : c < s.P ? vp[earlier_at(s, b, c, h) + d]
                               : xs[at(s, b, (c - s.P + 1) * s.L - 1, h) + d];
  }
}

/* The rows kernels' blocks: the query tile (the tiles with the most keys first) and its head. */
struct row_block {
  int b, h, bh, i0, n_keys; /* n_keys: the chunk keys the tile's last row sees */
};

__device__ __forceinline__ row_block row_block_of(const rat_shape &s) {
  row_block rb;
  rb.bh = (int)blockIdx.y;
  rb.b = rb.bh / s.H;
  rb.h = rb.bh % s.H;
  rb.i0 = (int)(gridDim.x - 1 - blockIdx.x) * BR;
  rb.n_keys = keys_of_row(s, min(rb.i0 + BR, s.T) - 1);
  return rb;
}

/* Forward. Per row (warp w's rows t = i0 + w + WARPS a): m, l the running max and sum, acc the
 * output, channel i = lane + 32 e in acc[e] and its partner i + D/2 in acc[NP + e]. Shared memory:
 * Ks, Vs [KT][D + 1], Qs [BR][D] (the rows' rotated queries). */
template <int NP>
__global__ void __launch_bounds__(WARPS * 32)
    forward_rows(rat_shape s, const float *q, const float *xs, const float *ks, const float *kc,
                 const float *vp, const float *cs, const float *sn, float *o, float *lse) {
  extern __shared__ float4 rat_shm[];
  int LD = s.D + 1;
  float *Ks = reinterpret_cast<float *>(rat_shm), *Vs = Ks + KT * LD, *Qs = Vs + KT * LD;
  int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32;
  row_block rb = row_block_of(s);
  float m[RW], l[RW], acc[RW][2 * NP];

#pragma unroll
  for (int a = 0; a < RW; a++) {
    int r = warp + WARPS * a, t = rb.i0 + r;
    m[a] = 0.f;
    l[a] = 1.f;
#pragma unroll
    for (int e = 0; e < 2 * NP; e++) acc[a][e] = 0.f;
    if (t >= s.T) continue;
    int64_t off = at(s, rb.b, t, rb.h);
    const float *cr = cs + keys_of_row(s, t) * s.half, *sr = sn + keys_of_row(s, t) * s.half;
    float part = 0.f;
#pragma unroll
    for (int e = 0; e < NP; e++) {
      int i = lane + 32 * e;
      if (i >= s.half) break;
      float q1 = q[off + i], q2 = q[off + i + s.half];
      part = fmaf(q1, ks[off + i], part);
      part = fmaf(q2, ks[off + i + s.half], part);
      acc[a][e] = xs[off + i];
      acc[a][NP + e] = xs[off + i + s.half];
      Qs[r * s.D + i] = q1 * cr[i] - q2 * sr[i];
      Qs[r * s.D + i + s.half] = q2 * cr[i] + q1 * sr[i];
    }
    /* The own running state: q_t . ks_t, both turned by the same angle. */
    m[a] = s.scale * warp_all_sum(part);
  }

  for (int j0 = 0; j0 < rb.n_keys; j0 += KT) {
    __syncthreads(); /* the last tile is read; the first time, Qs is written */
    stage_keys(s, rb.b, rb.h, j0, kc, vp, xs, Ks, Vs);
    __syncthreads();
#pragma unroll
    for (int a = 0; a < RW; a++) {
      int r = warp + WARPS * a, t = rb.i0 + r;
      if (t >= s.T || keys_of_row(s, t) <= j0) continue; /* the whole warp: no key here */
      int n = min(KT, keys_of_row(s, t) - j0);
      float sc = lane < n ? s.scale * dot_shared(Qs + r * s.D, Ks + lane * LD, s.D) : -INFINITY;
      float mx = fmaxf(m[a], warp_all_max(sc));
      float alpha = expf(m[a] - mx), p = lane < n ? expf(sc - mx) : 0.f;
      l[a] = l[a] * alpha + warp_all_sum(p);
      m[a] = mx;
#pragma unroll
      for (int e = 0; e < 2 * NP; e++) acc[a][e] *= alpha;
      for (int j = 0; j < n; j++) {
        float pj = __shfl_sync(FULL, p, j);
        const float *v = Vs + j * LD;
#pragma unroll
        for (int e = 0; e < NP; e++) {
          int i = lane + 32 * e;
          if (i >= s.half) break;
          acc[a][e] = fmaf(pj, v[i], acc[a][e]);
          acc[a][NP + e] = fmaf(pj, v[i + s.half], acc[a][NP + e]);
        }
      }
    }
  }

#pragma unroll
  for (int a = 0; a < RW; a++) {
    int t = rb.i0 + warp + WARPS * a;
    if (t >= s.T) continue;
    int64_t off = at(s, rb.b, t, rb.h);
    float inv = 1.f / l[a];
#pragma unroll
    for (int e = 0; e < NP; e++) {
      int i = lane + 32 * e;
      if (i >= s.half) break;
      o[off + i] = acc[a][e] * inv;
      o[off + i + s.half] = acc[a][NP + e] * inv;
    }
    if (lane == 0) lse[(int64_t)rb.bh * s.T + t] = m[a] + logf(l[a]);
  }
}

/* Per-row numbers the backward's later kernels read, [B, H, T] each: the own key's probability
 * and dS (scale included), and di = go . o. */
struct row_terms {
  float *p_own, *ds_own, *di;
};

/* Backward, the rows: with p = exp(s - lse) and di = go . o, every key j of row t gets
 * dS_tj = scale p_tj (go_t . v_j - di). The own key's share of dq, dS ks_t, is added first; with
 * DQ the chunk keys' dQr = sum_j dS_tj kc_j follows, turned back by R(c(t))^T. Shared memory:
 * Ks, Vs [KT][D + 1], Qs, Gs [BR][D] (rotated queries, go). */
template <int NP, bool DQ>
__global__ void __launch_bounds__(WARPS * 32)
    backward_rows(rat_shape s, const float *q, const float *xs, const float *ks, const float *kc,
                  const float *vp, const float *cs, const float *sn, const float *o,
                  const float *lse, const float *go, float *gq, row_terms rt) {
  extern __shared__ float4 rat_shm[];
  int LD = s.D + 1;
  float *Ks = reinterpret_cast<float *>(rat_shm), *Vs = Ks + KT * LD, *Qs = Vs + KT * LD,
        *Gs = Qs + BR * s.D;
  int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32;
  row_block rb = row_block_of(s);
  float di[RW], lr[RW], dq[RW][2 * NP];

#pragma unroll
  for (int a = 0; a < RW; a++) {
    int r = warp + WARPS * a, t = rb.i0 + r;
    di[a] = lr[a] = 0.f;
#pragma unroll
    for (int e = 0; e < 2 * NP; e++) dq[a][e] = 0.f;
    if (t >= s.T) continue;
    int64_t off = at(s, rb.b, t, rb.h), row = (int64_t)rb.bh * s.T + t;
    const float *cr = cs + keys_of_row(s, t) * s.half, *sr = sn + keys_of_row(s, t) * s.half;
    float go_o = 0.f, q_ks = 0.f, go_xs = 0.f;
#pragma unroll
    for (int e = 0; e < NP; e++) {
      int i = lane + 32 * e;
      if (i >= s.half) break;
#pragma unroll
      for (int side = 0; side < 2; side++) {
        int64_t x = off + i + side * s.half;
        go_o = fmaf(go[x], o[x], go_o);
        q_ks = fmaf(q[x], ks[x], q_ks);
        go_xs = fmaf(go[x], xs[x], go_xs);
        Gs[r * s.D + i + side * s.half] = go[x];
      }
      float q1 = q[off + i], q2 = q[off + i + s.half];
      Qs[r * s.D + i] = q1 * cr[i] - q2 * sr[i];
      Qs[r * s.D + i + s.half] = q2 * cr[i] + q1 * sr[i];
    }
    di[a] = warp_all_sum(go_o);
    lr[a] = lse[row];
    float p = expf(s.scale * warp_all_sum(q_ks) - lr[a]);
    float ds = s.scale * p * (warp_all_sum(go_xs) - di[a]);
    if (lane == 0) {
      rt.p_own[row] = p;
      rt.ds_own[row] = ds;
      rt.di[row] = di[a];
    }
    if (DQ)
#pragma unroll
      for (int e = 0; e < NP; e++) {
        int i = lane + 32 * e;
        if (i >= s.half) break;
        gq[off + i] += ds * ks[off + i];
        gq[off + i + s.half] += ds * ks[off + i + s.half];
      }
  }
  if constexpr (DQ) { /* the chunk keys' share of dq */
    for (int j0 = 0; j0 < rb.n_keys; j0 += KT) {
      __syncthreads(); /* the last tile is read; the first time, Qs and Gs are written */
      stage_keys(s, rb.b, rb.h, j0, kc, vp, xs, Ks, Vs);
      __syncthreads();
#pragma unroll
      for (int a = 0; a < RW; a++) {
        int r = warp + WARPS * a, t = rb.i0 + r;
        if (t >= s.T || keys_of_row(s, t) <= j0) continue; /* the whole warp */
        int n = min(KT, keys_of_row(s, t) - j0);
        float ds = 0.f;
        if (lane < n) {
          float sc = s.scale * dot_shared(Qs + r * s.D, Ks + lane * LD, s.D);
          float dp = dot_shared(Gs + r * s.D, Vs + lane * LD, s.D);
          ds = s.scale * expf(sc - lr[a]) * (dp - di[a]);
        }
        for (int j = 0; j < n; j++) {
          float dj = __shfl_sync(FULL, ds, j);
          const float *kj = Ks + j * LD;
#pragma unroll
          for (int e = 0; e < NP; e++) {
            int i = lane + 32 * e;
            if (i >= s.half) break;
            dq[a][e] = fmaf(dj, kj[i], dq[a][e]);
            dq[a][NP + e] = fmaf(dj, kj[i + s.half], dq[a][NP + e]);
          }
        }
      }
    }

#pragma unroll
    for (int a = 0; a < RW; a++) {
      int t = rb.i0 + warp + WARPS * a;
      if (t >= s.T || keys_of_row(s, t) == 0) continue; /* no chunk key: dQr is zero */
      int64_t off = at(s, rb.b, t, rb.h);
      const float *cr = cs + keys_of_row(s, t) * s.half, *sr = sn + keys_of_row(s, t) * s.half;
#pragma unroll
      for (int e = 0; e < NP; e++) {
        int i = lane + 32 * e;
        if (i >= s.half) break;
        float y1 = dq[a][e], y2 = dq[a][NP + e];
        gq[off + i] += y1 * cr[i] + y2 * sr[i];
        gq[off + i + s.half] += y2 * cr[i] - y1 * sr[i];
      }
    }
  }
}

/* Backward, the chunk keys: dKc_j = sum_t dS_tj Qr_t and dVc_j = sum_t P_tj go_t over the rows t
 * that see key j (all rows for an earlier chunk's, else t from (j - P + 1) L on), into gkc, gvc
 * [B, H, P + n_keys, D] (the rotated key's gradient: the reverse scan or earlier_grads turns it
 * back). Grid: (key tile, b H + h, channel group). Per step
 * of RB rows: P and dS with one key per lane (warp w: rows w, w + 8, ...), then the sums with
 * thread (w, lane) owning keys w + 8 a and channels g0 + lane + 32 e. Shared memory: Ks, Vs
 * [KT][D + 1], Qs, Gs [RB][D + 1], P, dS [RB][KT + 1], lse and di [RB]. */
__global__ void __launch_bounds__(KWARPS * 32)
    backward_keys(rat_shape s, int RB, const float *q, const float *xs, const float *kc,
                  const float *vp, const float *cs, const float *sn, const float *go,
                  const float *lse, const float *di, float *gkc, float *gvc) {
  extern __shared__ float4 rat_shm[];
  int LD = s.D + 1, LP = KT + 1;
  float *Ks = reinterpret_cast<float *>(rat_shm), *Vs = Ks + KT * LD, *Qs = Vs + KT * LD,
        *Gs = Qs + RB * LD, *Ps = Gs + RB * LD, *Ds = Ps + RB * LP, *lse_s = Ds + RB * LP,
        *di_s = lse_s + RB;
  int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32;
  int j0 = (int)blockIdx.x * KT, bh = (int)blockIdx.y, b = bh / s.H, h = bh % s.H;
  int g0 = (int)blockIdx.z * CG;
  float acc_k[KA][CE] = {}, acc_v[KA][CE] = {};

  stage_keys(s, b, h, j0, kc, vp, xs, Ks, Vs);
  for (int r0 = j0 < s.P ? 0 : (j0 - s.P + 1) * s.L; r0 < s.T; r0 += RB) {
    __syncthreads(); /* the last step's rows are read; the first time, Ks and Vs are written */
    for (int x = (int)threadIdx.x; x < RB * s.half; x += (int)blockDim.x) {
      int r = x / s.half, i = x % s.half, t = r0 + r;
      float q1 = 0.f, q2 = 0.f, g1 = 0.f, g2 = 0.f, co = 1.f, si = 0.f;
      if (t < s.T) {
        int64_t off = at(s, b, t, h) + i;
        q1 = q[off];
        q2 = q[off + s.half];
        g1 = go[off];
        g2 = go[off + s.half];
        co = cs[keys_of_row(s, t) * s.half + i];
        si = sn[keys_of_row(s, t) * s.half + i];
      }
      Qs[r * LD + i] = q1 * co - q2 * si;
      Qs[r * LD + i + s.half] = q2 * co + q1 * si;
      Gs[r * LD + i] = g1;
      Gs[r * LD + i + s.half] = g2;
    }
    for (int r = (int)threadIdx.x; r < RB; r += (int)blockDim.x) {
      int t = r0 + r;
      lse_s[r] = t < s.T ? lse[(int64_t)bh * s.T + t] : 0.f;
      di_s[r] = t < s.T ? di[(int64_t)bh * s.T + t] : 0.f;
    }
    __syncthreads();
    for (int r = warp; r < RB; r += KWARPS) {
      int t = r0 + r;
      float p = 0.f, ds = 0.f;
      if (t < s.T && j0 + lane < keys_of_row(s, t)) {
        float sc = s.scale * dot_shared(Qs + r * LD, Ks + lane * LD, s.D);
        float dp = dot_shared(Gs + r * LD, Vs + lane * LD, s.D);
        p = expf(sc - lse_s[r]);
        ds = s.scale * p * (dp - di_s[r]);
      }
      Ps[r * LP + lane] = p;
      Ds[r * LP + lane] = ds;
    }
    __syncthreads();
    int rows = min(RB, s.T - r0);
    for (int r = 0; r < rows; r++) {
      const float *qr = Qs + r * LD, *gr = Gs + r * LD;
#pragma unroll
      for (int a = 0; a < KA; a++) {
        float p = Ps[r * LP + warp + KWARPS * a], ds = Ds[r * LP + warp + KWARPS * a];
#pragma unroll
        for (int e = 0; e < CE; e++) {
          int d = g0 + lane + 32 * e;
          if (d < s.D) {
            acc_k[a][e] = fmaf(ds, qr[d], acc_k[a][e]);
            acc_v[a][e] = fmaf(p, gr[d], acc_v[a][e]);
          }
        }
      }
    }
  }

#pragma unroll
  for (int a = 0; a < KA; a++) {
    int c = j0 + warp + KWARPS * a;
    if (c >= s.keys) continue;
    int64_t off = key_at(s, bh, c);
#pragma unroll
    for (int e = 0; e < CE; e++) {
      int d = g0 + lane + 32 * e;
      if (d < s.D) {
        gkc[off + d] = acc_k[a][e];
        gvc[off + d] = acc_v[a][e];
      }
    }
  }
}

/* Backward, the recurrence in reverse inside one chunk, channels i and i + D/2 of one head. The
 * state gradients gx_t, gk_t gather the own key's share (p go_t, dS q_t), at the chunk's last
 * token the chunk-final value's and key's (gvc, R(c)^T gkc), and the next token's carry
 * (f_{t+1} g_{t+1}); then du_t = (1 - f_t) gx_t, dk_t = (1 - f_t) gk_t and
 * df_t = gx_t (xs_{t-1} - u_t) + gk_t (ks_{t-1} - k_t), the states before the chunk 0. */
struct recur_grads {
  float *gu, *gk, *gf;
};

__global__ void backward_recur(rat_shape s, const float *q, const float *u, const float *k,
                               const float *f, const float *xs, const float *ks, const float *go,
                               row_terms rt, const float *gkc, const float *gvc, const float *cs,
                               const float *sn, recur_grads g) {
  HY_GRID_STRIDE(x, (int64_t)s.B * s.nc * s.H * s.half) {
    int i = (int)(x % s.half);
    int64_t r = x / s.half;
    int h = (int)(r % s.H);
    r /= s.H;
    int c = (int)(r % s.nc), b = (int)(r / s.nc), bh = b * s.H + h;
    int t0 = c * s.L, t1 = min(s.T, t0 + s.L) - 1;
    int64_t ld = (int64_t)s.H * s.D;
    float cx[2] = {0.f, 0.f}, ck[2] = {0.f, 0.f}; /* f_{t+1} g_{t+1} */
    for (int t = t1; t >= t0; t--) {
      int64_t o1 = at(s, b, t, h) + i, row = (int64_t)bh * s.T + t;
      float p = rt.p_own[row], ds = rt.ds_own[row];
      float gx[2], gks[2];
#pragma unroll
      for (int side = 0; side < 2; side++) {
        int64_t y = o1 + side * s.half;
        gx[side] = p * go[y];
        gks[side] = ds * q[y];
      }
      if (t == t1 && c < s.nk) { /* t is the chunk's last token, (c + 1) L - 1 */
        int64_t kx = key_at(s, bh, s.P + c) + i;
        float co = cs[(s.P + c) * s.half + i], si = sn[(s.P + c) * s.half + i];
        float y1 = gkc[kx], y2 = gkc[kx + s.half];
        gx[0] += gvc[kx];
        gx[1] += gvc[kx + s.half];
        gks[0] += y1 * co + y2 * si;
        gks[1] += y2 * co - y1 * si;
      }
#pragma unroll
      for (int side = 0; side < 2; side++) {
        int64_t y = o1 + side * s.half;
        float gxs = gx[side] + cx[side], gkt = gks[side] + ck[side], ft = f[y];
        if (g.gu) g.gu[y] += (1.f - ft) * gxs;
        if (g.gk) g.gk[y] += (1.f - ft) * gkt;
        if (g.gf) {
          if (t == t0)
            g.gf[y] -= gxs * u[y] + gkt * k[y];
          else
            g.gf[y] += gxs * (xs[y - ld] - u[y]) + gkt * (ks[y - ld] - k[y]);
        }
        cx[side] = ft * gxs;
        ck[side] = ft * gkt;
      }
    }
  }
}

/* The earlier chunks' gradients: gkp += R(p)^T dKc_p, gvp += dVc_p, one thread per (b, p, h,
 * channel pair). */
__global__ void earlier_grads(rat_shape s, const float *gkc, const float *gvc, const float *cs,
                              const float *sn, float *gkp, float *gvp) {
  HY_GRID_STRIDE(x, (int64_t)s.B * s.P * s.H * s.half) {
    int i = (int)(x % s.half);
    int64_t r = x / s.half;
    int h = (int)(r % s.H);
    r /= s.H;
    int p = (int)(r % s.P), b = (int)(r / s.P);
    int64_t kx = key_at(s, b * s.H + h, p) + i, out = earlier_at(s, b, p, h) + i;
    if (gkp) {
      float y1 = gkc[kx], y2 = gkc[kx + s.half], co = cs[p * s.half + i], si = sn[p * s.half + i];
      gkp[out] += y1 * co + y2 * si;
      gkp[out + s.half] += y2 * co - y1 * si;
    }
    if (gvp) {
      gvp[out] += gvc[kx];
      gvp[out + s.half] += gvc[kx + s.half];
    }
  }
}

/* hy_rat_chunk_ends: h_t = f_t h_{t-1} + (1 - f_t) x_t over chunk c for channel d of head h, into
 * y [B, T / L, H, D] at its last token. */
__global__ void ends_forward(hy_rat_dims dm, const float *x, const float *f, float *y) {
  int64_t n = dm.T / dm.L;
  HY_GRID_STRIDE(idx, dm.B * n * dm.H * dm.D) {
    int64_t d = idx % dm.D, h = idx / dm.D % dm.H, c = idx / (dm.D * dm.H) % n,
            b = idx / (dm.D * dm.H * n);
    float state = 0.f;
    for (int64_t t = c * dm.L; t < (c + 1) * dm.L; t++) {
      int64_t o = ((b * dm.T + t) * dm.H + h) * dm.D + d;
      state = f[o] * state + (1.f - f[o]) * x[o];
    }
    y[idx] = state;
  }
}

/* Its backward: the states forward into `states` [B, T, H, D], then in reverse from g = gy:
 * dx_t = (1 - f_t) g, df_t = g (h_{t-1} - x_t) (0 before the chunk), g <- f_t g. */
__global__ void ends_backward(hy_rat_dims dm, const float *x, const float *f, const float *gy,
                              float *states, float *gx, float *gf) {
  int64_t n = dm.T / dm.L, ld = dm.H * dm.D;
  HY_GRID_STRIDE(idx, dm.B * n * dm.H * dm.D) {
    int64_t d = idx % dm.D, h = idx / dm.D % dm.H, c = idx / (dm.D * dm.H) % n,
            b = idx / (dm.D * dm.H * n);
    int64_t first = ((b * dm.T + c * dm.L) * dm.H + h) * dm.D + d;
    float state = 0.f;
    for (int64_t t = 0; t < dm.L; t++) {
      int64_t o = first + t * ld;
      state = f[o] * state + (1.f - f[o]) * x[o];
      states[o] = state;
    }
    float g = gy[idx];
    for (int64_t t = dm.L - 1; t >= 0; t--) {
      int64_t o = first + t * ld;
      if (gx) gx[o] += (1.f - f[o]) * g;
      if (gf) gf[o] += g * ((t > 0 ? states[o - ld] : 0.f) - x[o]);
      g *= f[o];
    }
  }
}

/* ---- launches ---- */

rat_shape shape_of(const hy_rat_dims *dm) {
  if (dm->D > 2 * 32 * MAX_NP)
    hy_die("rat", "head size %lld: the GPU kernels take at most %d", (long long)dm->D,
           2 * 32 * MAX_NP);
  if (dm->B * dm->H > HY_CUDA_RAT_BATCH_HEADS_MAX)
    hy_die("rat", "%lld heads over the batch: the GPU kernels take at most %d",
           (long long)(dm->B * dm->H), HY_CUDA_RAT_BATCH_HEADS_MAX);
  rat_shape s;
  s.B = (int)dm->B;
  s.T = (int)dm->T;
  s.H = (int)dm->H;
  s.D = (int)dm->D;
  s.half = s.D / 2;
  s.L = (int)(dm->L < dm->T ? dm->L : (dm->T > 0 ? dm->T : 1)); /* a longer chunk is all of T */
  s.nk = (int)dm->n_keys;
  s.nc = (s.T + s.L - 1) / s.L;
  s.P = (int)dm->P;
  s.keys = s.P + s.nk;
  s.scale = (float)dm->scale;
  return s;
}

bool empty(const hy_rat_dims *dm) { return dm->B * dm->T * dm->H * dm->D == 0; }

float *scratch(size_t floats) {
  return (float *)hy_arena_alloc_on(HY_CUDA, sizeof(float) * (floats ? floats : 1));
}

/* Raise a kernel's dynamic shared memory limit when it needs more than the default 48 KiB, up to
 * what the device allows; *raised: the largest size set so far for this kernel. */
template <typename Kernel> void allow_shared(Kernel kernel, size_t bytes, size_t *raised) {
  if (bytes <= 48 * 1024 || bytes <= *raised) return;
  int dev = 0, most = 0;
  HY_CUDA_CHECK(cudaGetDevice(&dev));
  HY_CUDA_CHECK(cudaDeviceGetAttribute(&most, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  if (bytes > (size_t)most)
    hy_die("rat", "head size needs %zu bytes of shared memory per block; the GPU has %d", bytes,
           most);
  HY_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
  *raised = bytes;
}

/* The RoPE table and the states, shared by the forward and the backward. */
struct states {
  float *cs, *sn, *xs, *ks, *kc;
};

states compute_states(const rat_shape &s, double theta, const float *u, const float *k,
                      const float *f, const float *kp) {
  size_t n = (size_t)s.B * s.T * s.H * s.D, table = (size_t)(s.P + s.nc) * s.half;
  states st = {scratch(table), scratch(table), scratch(n), scratch(n),
               scratch((size_t)s.B * s.H * s.keys * s.D)};
  rope_table<<<hy_cuda_blocks((int64_t)table), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(
      s, theta, st.cs, st.sn);
  HY_CUDA_LAUNCHED(rope_table);
  states_kernel<<<hy_cuda_blocks((int64_t)s.B * s.nc * s.H * s.half), HY_CUDA_THREADS, 0,
                  hy_cuda_stream()>>>(s, u, k, f, st.cs, st.sn, st.xs, st.ks, st.kc);
  HY_CUDA_LAUNCHED(states_kernel);
  if (s.P > 0) {
    earlier_keys<<<hy_cuda_blocks((int64_t)s.B * s.P * s.H * s.half), HY_CUDA_THREADS, 0,
                   hy_cuda_stream()>>>(s, kp, st.cs, st.sn, st.kc);
    HY_CUDA_LAUNCHED(earlier_keys);
  }
  return st;
}

dim3 rows_grid(const rat_shape &s) {
  return dim3((unsigned)((s.T + BR - 1) / BR), (unsigned)(s.B * s.H));
}

size_t rows_bytes(const rat_shape &s, int row_buffers) {
  return sizeof(float) * ((size_t)2 * KT * (s.D + 1) + (size_t)row_buffers * BR * s.D);
}

template <int NP>
void run_forward(const rat_shape &s, const states &st, const float *q, const float *vp, float *o,
                 float *lse) {
  static size_t raised;
  auto kernel = forward_rows<NP>;
  size_t bytes = rows_bytes(s, 1);
  allow_shared(kernel, bytes, &raised);
  kernel<<<rows_grid(s), WARPS * 32, bytes, hy_cuda_stream()>>>(s, q, st.xs, st.ks, st.kc, vp,
                                                                st.cs, st.sn, o, lse);
  HY_CUDA_LAUNCHED(forward_rows);
}

template <int NP, bool DQ>
void run_backward_rows(const rat_shape &s, const states &st, const float *q, const float *vp,
                       const float *o, const float *lse, const float *go, float *gq, row_terms rt) {
  static size_t raised;
  auto kernel = backward_rows<NP, DQ>;
  size_t bytes = rows_bytes(s, 2);
  allow_shared(kernel, bytes, &raised);
  kernel<<<rows_grid(s), WARPS * 32, bytes, hy_cuda_stream()>>>(s, q, st.xs, st.ks, st.kc, vp,
                                                                st.cs, st.sn, o, lse, go, gq, rt);
  HY_CUDA_LAUNCHED(backward_rows);
}

template <int NP>
void backward_rows_any(const rat_shape &s, const states &st, const float *q, const float *vp,
                       const float *o, const float *lse, const float *go, float *gq, row_terms rt) {
  if (gq)
    run_backward_rows<NP, true>(s, st, q, vp, o, lse, go, gq, rt);
  else
    run_backward_rows<NP, false>(s, st, q, vp, o, lse, go, gq, rt);
}

void run_backward_keys(const rat_shape &s, const states &st, const float *q, const float *vp,
                       const float *go, const float *lse, const float *di, float *gkc, float *gvc) {
  static size_t raised;
  int RB = s.D <= 256 ? 32 : 16; /* rows per step: wider heads keep fewer in shared memory */
  size_t bytes = sizeof(float) * ((size_t)2 * KT * (s.D + 1) + (size_t)2 * RB * (s.D + 1) +
                                  (size_t)2 * RB * (KT + 1) + (size_t)2 * RB);
  allow_shared(backward_keys, bytes, &raised);
  dim3 grid((unsigned)((s.keys + KT - 1) / KT), (unsigned)(s.B * s.H),
            (unsigned)((s.D + CG - 1) / CG));
  backward_keys<<<grid, KWARPS * 32, bytes, hy_cuda_stream()>>>(s, RB, q, st.xs, st.kc, vp, st.cs,
                                                                st.sn, go, lse, di, gkc, gvc);
  HY_CUDA_LAUNCHED(backward_keys);
}

/* Channel pairs per lane: the smallest of 1, 2, 4, 8 covering D/2. */
int pairs_per_lane(const rat_shape &s) {
  int np = 1;
  while (32 * np < s.half) np *= 2;
  return np;
}

void forward(const rat_shape &s, const states &st, const float *q, const float *vp, float *o,
             float *lse) {
  switch (pairs_per_lane(s)) {
  case 1: run_forward<1>(s, st, q, vp, o, lse); break;
  case 2: run_forward<2>(s, st, q, vp, o, lse); break;
  case 4: run_forward<4>(s, st, q, vp, o, lse); break;
  default: run_forward<8>(s, st, q, vp, o, lse); break;
  }
}

void backward_rows(const rat_shape &s, const states &st, const float *q, const float *vp,
                   const float *o, const float *lse, const float *go, float *gq, row_terms rt) {
  switch (pairs_per_lane(s)) {
  case 1: backward_rows_any<1>(s, st, q, vp, o, lse, go, gq, rt); break;
  case 2: backward_rows_any<2>(s, st, q, vp, o, lse, go, gq, rt); break;
  case 4: backward_rows_any<4>(s, st, q, vp, o, lse, go, gq, rt); break;
  default: backward_rows_any<8>(s, st, q, vp, o, lse, go, gq, rt); break;
  }
}

} // namespace

extern "C" void cuda_rat_f32(const hy_rat_dims *dims, const float *q, const float *u,
                             const float *k, const float *f, const float *kp, const float *vp,
                             float *o, float *lse) {
  if (empty(dims)) return;
  rat_shape s = shape_of(dims);
  hy_arena_mark mark = hy_arena_get_mark();
  states st = compute_states(s, dims->theta, u, k, f, kp);
  forward(s, st, q, vp, o, lse);
  hy_arena_rewind(mark);
}

extern "C" void cuda_rat_backward_f32(const hy_rat_dims *dims, const float *q, const float *u,
                                      const float *k, const float *f, const float *kp,
                                      const float *vp, const float *o, const float *lse,
                                      const float *go, float *gq, float *gu, float *gk, float *gf,
                                      float *gkp, float *gvp) {
  bool earlier = dims->P > 0 && (gkp || gvp), keys = gu || gk || gf || earlier; /* need dKc */
  if (empty(dims) || !(gq || keys)) return;
  rat_shape s = shape_of(dims);
  hy_arena_mark mark = hy_arena_get_mark();
  states st = compute_states(s, dims->theta, u, k, f, kp);
  size_t rows = (size_t)s.B * s.H * s.T, key_floats = (size_t)s.B * s.H * s.keys * s.D;
  row_terms rt = {scratch(rows), scratch(rows), scratch(rows)};
  backward_rows(s, st, q, vp, o, lse, go, gq, rt);
  if (keys) {
    float *gkc = scratch(key_floats), *gvc = scratch(key_floats);
    if (s.keys > 0) run_backward_keys(s, st, q, vp, go, lse, rt.di, gkc, gvc);
    if (gu || gk || gf) {
      recur_grads g = {gu, gk, gf};
      backward_recur<<<hy_cuda_blocks((int64_t)s.B * s.nc * s.H * s.half), HY_CUDA_THREADS, 0,
                       hy_cuda_stream()>>>(s, q, u, k, f, st.xs, st.ks, go, rt, gkc, gvc, st.cs,
                                           st.sn, g);
      HY_CUDA_LAUNCHED(backward_recur);
    }
    if (earlier) {
      earlier_grads<<<hy_cuda_blocks((int64_t)s.B * s.P * s.H * s.half), HY_CUDA_THREADS, 0,
                      hy_cuda_stream()>>>(s, gkc, gvc, st.cs, st.sn, gkp, gvp);
      HY_CUDA_LAUNCHED(earlier_grads);
    }
  }
  hy_arena_rewind(mark);
}

extern "C" void cuda_rat_ends_f32(const hy_rat_dims *dims, const float *x, const float *f,
                                  float *y) {
  int64_t n = dims->B * (dims->T / dims->L) * dims->H * dims->D;
  if (n == 0) return;
  ends_forward<<<hy_cuda_blocks(n), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(*dims, x, f, y);
  HY_CUDA_LAUNCHED(ends_forward);
}

extern "C" void cuda_rat_ends_backward_f32(const hy_rat_dims *dims, const float *x, const float *f,
                                           const float *gy, float *gx, float *gf) {
  int64_t n = dims->B * (dims->T / dims->L) * dims->H * dims->D;
  if (n == 0 || !(gx || gf)) return;
  hy_arena_mark mark = hy_arena_get_mark();
  float *states = scratch((size_t)(n * dims->L));
  ends_backward<<<hy_cuda_blocks(n), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(*dims, x, f, gy,
                                                                             states, gx, gf);
  HY_CUDA_LAUNCHED(ends_backward);
  hy_arena_rewind(mark);
}
