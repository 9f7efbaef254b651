#include "tensor/cuda/attention_shape.cuh"
#include "tensor/cuda/common.cuh"
#include "tensor/cuda/limits.h"
#include "tensor/cuda/tiles.cuh"
extern "C" {
#include "tensor/arena.h"
#include "tensor/device.h"
}

#include <math.h>

/* Causal softmax attention on the GPU in f32, FlashAttention-2 style: the twin of
 * tensor/cpu/attention.c, with its layouts (o and the gradients contiguous [B, T, H, D], lse
 * [B, H, T], q, k, v rows by their strides) and its window rule (query t sees keys
 * t - window < s <= t).
 *
 * Forward: one block per (query tile, b, h) keeps its queries in shared memory and walks the key
 * tiles it can see, with K and V staged in shared memory (cp.async, the next tile's load
 * overlapping the current tile's work); a running max and sum per query row (online softmax) in
 * registers. Backward: delta_t = dO_t . O_t first, then one kernel over key tiles that recomputes
 * P from q, k and lse and sums dK and dV over the query tiles that see them, and one over query
 * tiles that sums dQ over their key tiles: every output has one owner, so no atomics, and the
 * sums run in a fixed order.
 * The thread layout and tile helpers are tiles.cuh's. bf16 tensors go to the tensor-core kernels
 * of attention_bf16.cu. */

namespace {

/* Forward: o = softmax(scale q k^T, causal) v, lse = the rows' log-sum-exps. Grid (B H, query
 * tiles), the tiles with the most keys first. Shared memory: Q [BR, DP+4], K, V [BC, DP+4],
 * P [BR, BC+16] (rows padded against bank conflicts). */
template <int DP, int BR, int BC, int RT>
__global__ void __launch_bounds__(BR / RT * 16)
    attention_forward(attn_shape a, const float *q, const float *k, const float *v, float *o,
                      float *lse, bool vec4) {
  constexpr int TY = BR / RT, THREADS = TY * 16, CT = BC / 16, N = DP / 16, LD = DP + 4,
                LDP = BC + 16;
  extern __shared__ float4 shm[];
  float *Qs = reinterpret_cast<float *>(shm), *Ks = Qs + BR * LD, *Vs = Ks + BC * LD,
        *Ps = Vs + BC * LD;
  const int ty = (int)threadIdx.x / 16, tx = (int)threadIdx.x % 16;
  const int b = (int)blockIdx.x / a.H, h = (int)blockIdx.x % a.H;
  const int i0 = (int)(gridDim.y - 1 - blockIdx.y) * BR, nq = min(BR, a.T - i0);
  const int gi0 = a.q_offset + i0, gi_last = gi0 + nq - 1;
  const int j_begin = first_key_tile<BC>(a, gi0), j_end = gi_last + 1;
  const float *qb = q + b * a.qs[0] + h * a.qs[2], *kb = k + b * a.ks[0] + h * a.ks[2],
              *vb = v + b * a.vs[0] + h * a.vs[2];

  load_tile<BR, DP, THREADS>(Qs, LD, qb + i0 * a.qs[1], a.qs[1], nq, a.D, vec4);
  load_tile<BC, DP, THREADS>(Ks, LD, kb + j_begin * a.ks[1], a.ks[1], min(BC, a.Tk - j_begin), a.D,
                             vec4);
  cp_async_commit();

  float m[RT], l[RT], acc[RT][N];
#pragma unroll
  for (int i = 0; i < RT; i++) {
    m[i] = -INFINITY;
    l[i] = 0.f;
#pragma unroll
    for (int e = 0; e < N; e++) acc[i][e] = 0.f;
  }

  for (int j0 = j_begin; j0 < j_end; j0 += BC) {
    cp_async_wait<0>(); /* K (and Q) */
    __syncthreads();
    load_tile<BC, DP, THREADS>(Vs, LD, vb + j0 * a.vs[1], a.vs[1], min(BC, a.Tk - j0), a.D, vec4);
    cp_async_commit();

    float s[RT][CT];
#pragma unroll
    for (int i = 0; i < RT; i++)
#pragma unroll
      for (int j = 0; j < CT; j++) s[i][j] = 0.f;
    product_abt<RT, CT, TY, DP>(s, Qs, LD, Ks, LD, ty, tx);
    __syncthreads(); /* K is read, the last tile's P too */
    if (j0 + BC < j_end)
      load_tile<BC, DP, THREADS>(Ks, LD, kb + (j0 + BC) * a.ks[1], a.ks[1], min(BC, a.Tk - j0 - BC),
                                 a.D, vec4);
    cp_async_commit();

    bool mask = j0 + BC - 1 > gi0 || (a.window > 0 && gi_last - j0 >= a.window);
#pragma unroll
    for (int i = 0; i < RT; i++) {
      int gi = gi0 + ty + TY * i;
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < CT; j++) {
        float x = s[i][j] * a.scale2;
        if (mask && hidden(a, gi, j0 + tx + 16 * j)) x = -INFINITY;
        s[i][j] = x;
        mx = fmaxf(mx, x);
      }
      float m_new = fmaxf(m[i], row_max(mx));
      float m_use = m_new == -INFINITY ? 0.f : m_new; /* no key of the row yet (a window) */
      float alpha = exp2f(m[i] - m_use), sum = 0.f;
#pragma unroll
      for (int j = 0; j < CT; j++) {
        float p = exp2f(s[i][j] - m_use);
        sum += p;
        Ps[(ty + TY * i) * LDP + tx + 16 * j] = p;
      }
      m[i] = m_new;
      l[i] = l[i] * alpha + sum; /* this thread's columns; summed over the row at the end */
#pragma unroll
      for (int e = 0; e < N; e++) acc[i][e] *= alpha;
    }
    cp_async_wait<1>(); /* V */
    __syncthreads();
    product_ab<RT, BC, TY, DP>(acc, Ps, LDP, Vs, LD, ty, tx);
  }

#pragma unroll
  for (int i = 0; i < RT; i++) {
    float sum = row_sum(l[i]);
    int r = ty + TY * i;
    if (r >= nq) continue;
    float inv = 1.f / sum;
#pragma unroll
    for (int e = 0; e < N; e++) acc[i][e] *= inv;
    int64_t t = i0 + r;
    store_row<DP>(o + ((b * (int64_t)a.T + t) * a.H + h) * a.D, acc[i], a.D, tx, vec4, false);
    if (tx == 0) lse[((int64_t)b * a.H + h) * a.T + t] = m[i] * LN2 + logf(sum);
  }
}

/* dQ: one block per (query tile, b, h) walks the key tiles its queries see, recomputing
 * P = exp(scale q k^T - lse) and dS = scale P (dO v^T - delta), and sums gq (+)= dS K (add: into
 * what gq holds, else over it). Shared memory: Q, dO [BR, DP+4], K, V [BC, DP+4],
 * dS [BR, BC+16]. */
template <int DP, int BR, int BC, int RT>
__global__ void __launch_bounds__(BR / RT * 16)
    attention_backward_dq(attn_shape a, const float *q, const float *k, const float *v,
                          const float *go, const float *lse, const float *delta, float *gq,
                          bool add, bool vec4) {
  constexpr int TY = BR / RT, THREADS = TY * 16, CT = BC / 16, N = DP / 16, LD = DP + 4,
                LDP = BC + 16;
  extern __shared__ float4 shm[];
  float *Qs = reinterpret_cast<float *>(shm), *Gs = Qs + BR * LD, *Ks = Gs + BR * LD,
        *Vs = Ks + BC * LD, *Ss = Vs + BC * LD;
  const int ty = (int)threadIdx.x / 16, tx = (int)threadIdx.x % 16;
  const int b = (int)blockIdx.x / a.H, h = (int)blockIdx.x % a.H;
  const int i0 = (int)(gridDim.y - 1 - blockIdx.y) * BR, nq = min(BR, a.T - i0);
  const int gi0 = a.q_offset + i0, gi_last = gi0 + nq - 1;
  const int j_begin = first_key_tile<BC>(a, gi0), j_end = gi_last + 1;
  const int64_t ldg = (int64_t)a.H * a.D;
  const float *qb = q + b * a.qs[0] + h * a.qs[2], *kb = k + b * a.ks[0] + h * a.ks[2],
              *vb = v + b * a.vs[0] + h * a.vs[2];
  const float *gob = go + ((int64_t)b * a.T * a.H + h) * a.D;
  const float *lse_bh = lse + ((int64_t)b * a.H + h) * a.T, *delta_bh = delta + (lse_bh - lse);

  load_tile<BR, DP, THREADS>(Qs, LD, qb + i0 * a.qs[1], a.qs[1], nq, a.D, vec4);
  load_tile<BR, DP, THREADS>(Gs, LD, gob + i0 * ldg, ldg, nq, a.D, vec4);
  load_tile<BC, DP, THREADS>(Vs, LD, vb + j_begin * a.vs[1], a.vs[1], min(BC, a.Tk - j_begin), a.D,
                             vec4);
  cp_async_commit();
  load_tile<BC, DP, THREADS>(Ks, LD, kb + j_begin * a.ks[1], a.ks[1], min(BC, a.Tk - j_begin), a.D,
                             vec4);
  cp_async_commit();

  float lse2[RT], dl[RT], acc[RT][N];
#pragma unroll
  for (int i = 0; i < RT; i++) {
    int r = ty + TY * i;
    lse2[i] = r < nq ? lse_bh[i0 + r] * LOG2E : 0.f;
    dl[i] = r < nq ? delta_bh[i0 + r] : 0.f;
#pragma unroll
    for (int e = 0; e < N; e++) acc[i][e] = 0.f;
  }

  for (int j0 = j_begin; j0 < j_end; j0 += BC) {
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

    bool mask = j0 + BC - 1 > gi0 || (a.window > 0 && gi_last - j0 >= a.window);
#pragma unroll
    for (int i = 0; i < RT; i++) {
      int gi = gi0 + ty + TY * i;
#pragma unroll
      for (int j = 0; j < CT; j++) {
        float p = exp2f(s[i][j] * a.scale2 - lse2[i]);
        if (mask && hidden(a, gi, j0 + tx + 16 * j)) p = 0.f;
        Ss[(ty + TY * i) * LDP + tx + 16 * j] = a.scale * p * (dp[i][j] - dl[i]);
      }
    }
    __syncthreads(); /* dS is written, V is read */
    if (j0 + BC < j_end)
      load_tile<BC, DP, THREADS>(Vs, LD, vb + (j0 + BC) * a.vs[1], a.vs[1], min(BC, a.Tk - j0 - BC),
                                 a.D, vec4);
    cp_async_commit();
    product_ab<RT, BC, TY, DP>(acc, Ss, LDP, Ks, LD, ty, tx);
    __syncthreads(); /* K and dS are read */
    if (j0 + BC < j_end)
      load_tile<BC, DP, THREADS>(Ks, LD, kb + (j0 + BC) * a.ks[1], a.ks[1], min(BC, a.Tk - j0 - BC),
                                 a.D, vec4);
    cp_async_commit();
  }

#pragma unroll
  for (int i = 0; i < RT; i++) {
    int r = ty + TY * i;
    if (r < nq)
      store_row<DP>(gq + ((b * (int64_t)a.T + i0 + r) * a.H + h) * a.D, acc[i], a.D, tx, vec4, add);
  }
}

/* dK and dV: one block per (key tile, b, h) walks the query tiles that see its keys and sums
 * gv (+)= P^T dO and gk (+)= dS^T Q (add_k, add_v as for dQ), with P^T and dS^T computed key-major
 * (the thread's rows are keys). Grid (B H, key tiles), the tiles with the most queries first.
 * Shared memory: K, V [BC, DP+4], Q, dO [BR, DP+4], P^T, dS^T [BC, BR+16], lse and delta [BR]. */
template <int DP, int BC, int BR, int RT>
__global__ void __launch_bounds__(BC / RT * 16)
    attention_backward_dkdv(attn_shape a, const float *q, const float *k, const float *v,
                            const float *go, const float *lse, const float *delta, float *gk,
                            float *gv, bool add_k, bool add_v, bool vec4) {
  constexpr int TY = BC / RT, THREADS = TY * 16, CT = BR / 16, N = DP / 16, LD = DP + 4,
                LDP = BR + 16;
  extern __shared__ float4 shm[];
  float *Ks = reinterpret_cast<float *>(shm), *Vs = Ks + BC * LD, *Qs = Vs + BC * LD,
        *Gs = Qs + BR * LD, *Ps = Gs + BR * LD, *Ss = Ps + BC * LDP, *Ls = Ss + BC * LDP,
        *Ds = Ls + BR;
  const int ty = (int)threadIdx.x / 16, tx = (int)threadIdx.x % 16;
  const int b = (int)blockIdx.x / a.H, h = (int)blockIdx.x % a.H;
  const int j0 = (int)blockIdx.y * BC, nk = min(BC, a.Tk - j0), j_last = j0 + nk - 1;
  /* The queries (positions) that see a key of the tile: from j0 on, and within the window. */
  const int g_begin = max(j0, a.q_offset),
            g_end = a.window > 0 ? min(a.q_offset + a.T, j_last + a.window) : a.q_offset + a.T;
  const bool seen = g_begin < g_end; /* else the gradients are zero: += 0, or written */
  if (!seen && add_k && add_v) return;
  const int i_begin = seen ? (g_begin - a.q_offset) / BR * BR : 0,
            i_end = seen ? g_end - a.q_offset : 0;
  const int64_t ldg = (int64_t)a.H * a.D;
  const float *qb = q + b * a.qs[0] + h * a.qs[2], *kb = k + b * a.ks[0] + h * a.ks[2],
              *vb = v + b * a.vs[0] + h * a.vs[2];
  const float *gob = go + ((int64_t)b * a.T * a.H + h) * a.D;
  const float *lse_bh = lse + ((int64_t)b * a.H + h) * a.T, *delta_bh = delta + (lse_bh - lse);

  if (seen) {
    load_tile<BC, DP, THREADS>(Ks, LD, kb + j0 * a.ks[1], a.ks[1], nk, a.D, vec4);
    load_tile<BC, DP, THREADS>(Vs, LD, vb + j0 * a.vs[1], a.vs[1], nk, a.D, vec4);
  }

  float acc_k[RT][N], acc_v[RT][N];
#pragma unroll
  for (int i = 0; i < RT; i++)
#pragma unroll
    for (int e = 0; e < N; e++) acc_k[i][e] = acc_v[i][e] = 0.f;

  for (int i0 = i_begin; i0 < i_end; i0 += BR) {
    const int nq = min(BR, a.T - i0), gi0 = a.q_offset + i0, gi_last = gi0 + nq - 1;
    load_tile<BR, DP, THREADS>(Qs, LD, qb + i0 * a.qs[1], a.qs[1], nq, a.D, vec4);
    load_tile<BR, DP, THREADS>(Gs, LD, gob + i0 * ldg, ldg, nq, a.D, vec4);
    load_row<BR, THREADS>(Ls, lse_bh + i0, nq);
    load_row<BR, THREADS>(Ds, delta_bh + i0, nq);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();

    float s[RT][CT], dp[RT][CT];
#pragma unroll
    for (int i = 0; i < RT; i++)
#pragma unroll
      for (int j = 0; j < CT; j++) s[i][j] = dp[i][j] = 0.f;
    product_abt<RT, CT, TY, DP>(s, Ks, LD, Qs, LD, ty, tx);
    product_abt<RT, CT, TY, DP>(dp, Vs, LD, Gs, LD, ty, tx);

    bool mask = nq < BR || j0 + BC - 1 > gi0 || (a.window > 0 && gi_last - j0 >= a.window);
#pragma unroll
    for (int i = 0; i < RT; i++) {
      int j = j0 + ty + TY * i;
#pragma unroll
      for (int c = 0; c < CT; c++) {
        int col = tx + 16 * c;
        float p = exp2f(s[i][c] * a.scale2 - Ls[col] * LOG2E);
        if (mask && (col >= nq || hidden(a, gi0 + col, j))) p = 0.f;
        Ps[(ty + TY * i) * LDP + col] = p;
        Ss[(ty + TY * i) * LDP + col] = a.scale * p * (dp[i][c] - Ds[col]);
      }
    }
    __syncthreads();
    product_ab<RT, BR, TY, DP>(acc_v, Ps, LDP, Gs, LD, ty, tx);
    product_ab<RT, BR, TY, DP>(acc_k, Ss, LDP, Qs, LD, ty, tx);
    __syncthreads(); /* Q, dO, P, dS are read */
  }

#pragma unroll
  for (int i = 0; i < RT; i++) {
    int r = ty + TY * i;
    if (r >= nk) continue;
    int64_t off = ((b * (int64_t)a.Tk + j0 + r) * a.H + h) * a.D;
    if (gk) store_row<DP>(gk + off, acc_k[i], a.D, tx, vec4, add_k);
    if (gv) store_row<DP>(gv + off, acc_v[i], a.D, tx, vec4, add_v);
  }
}

struct launch {
  attn_shape a;
  int B;
  bool vec4;
  bool add_q, add_k, add_v; /* the backward adds to the gradient (else it overwrites it) */
};

template <int DP, int BR, int BC, int RT>
void run_forward(const launch &L, const float *q, const float *k, const float *v, float *o,
                 float *lse) {
  static bool done;
  auto kernel = attention_forward<DP, BR, BC, RT>;
  size_t bytes = sizeof(float) * (size_t)(BR * (DP + 4) + 2 * BC * (DP + 4) + BR * (BC + 16));
  hy_allow_shared(kernel, bytes, &done);
  dim3 grid((unsigned)(L.B * L.a.H), tiles(L.a.T, BR));
  kernel<<<grid, BR / RT * 16, bytes, hy_cuda_stream()>>>(L.a, q, k, v, o, lse, L.vec4);
  HY_CUDA_LAUNCHED(attention_forward);
}

template <int DP, int BR, int BC, int RT>
void run_backward_dq(const launch &L, const float *q, const float *k, const float *v,
                     const float *go, const float *lse, const float *delta, float *gq) {
  static bool done;
  auto kernel = attention_backward_dq<DP, BR, BC, RT>;
  size_t bytes = sizeof(float) * (size_t)(2 * BR * (DP + 4) + 2 * BC * (DP + 4) + BR * (BC + 16));
  hy_allow_shared(kernel, bytes, &done);
  dim3 grid((unsigned)(L.B * L.a.H), tiles(L.a.T, BR));
  kernel<<<grid, BR / RT * 16, bytes, hy_cuda_stream()>>>(L.a, q, k, v, go, lse, delta, gq, L.add_q,
                                                          L.vec4);
  HY_CUDA_LAUNCHED(attention_backward_dq);
}

template <int DP, int BC, int BR, int RT>
void run_backward_dkdv(const launch &L, const float *q, const float *k, const float *v,
                       const float *go, const float *lse, const float *delta, float *gk,
                       float *gv) {
  static bool done;
  auto kernel = attention_backward_dkdv<DP, BC, BR, RT>;
  size_t bytes =
      sizeof(float) * (size_t)(2 * BC * (DP + 4) + 2 * BR * (DP + 4) + 2 * BC * (BR + 16) + 2 * BR);
  hy_allow_shared(kernel, bytes, &done);
  dim3 grid((unsigned)(L.B * L.a.H), tiles(L.a.Tk, BC));
  kernel<<<grid, BC / RT * 16, bytes, hy_cuda_stream()>>>(L.a, q, k, v, go, lse, delta, gk, gv,
                                                          L.add_k, L.add_v, L.vec4);
  HY_CUDA_LAUNCHED(attention_backward_dkdv);
}

template <int DP>
void forward(const launch &L, const float *q, const float *k, const float *v, float *o,
             float *lse) {
  using c = tile_cfg<DP>;
  run_forward<DP, c::F_BR, c::F_BC, c::F_RT>(L, q, k, v, o, lse);
}

/* dK and dV first, then dQ: where q, k and v are one tensor their gradients are one buffer, which
 * the first kernel to write it overwrites or adds to and the later ones add to, in stream order
 * (tensor/attention.c asks for the gradients in this order). */
template <int DP>
void backward(const launch &L, const float *q, const float *k, const float *v, const float *go,
              const float *lse, const float *delta, float *gq, float *gk, float *gv) {
  using c = tile_cfg<DP>;
  if (gk || gv)
    run_backward_dkdv<DP, c::K_BC, c::K_BR, c::K_RT>(L, q, k, v, go, lse, delta, gk, gv);
  if (gq) run_backward_dq<DP, c::Q_BR, c::Q_BC, c::Q_RT>(L, q, k, v, go, lse, delta, gq);
}

bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

/* Rows of x can be copied in 16-byte pieces. */
bool rows_vec4(const void *x, const int64_t *stride, int64_t D) {
  return D % 4 == 0 && aligned16(x) && stride[0] % 4 == 0 && stride[1] % 4 == 0 &&
         stride[2] % 4 == 0;
}

int padded(int64_t D) {
  if (D < 1 || D > HY_CUDA_ATTN_HEAD_MAX)
    hy_die("attention", "head size D = %lld: the GPU kernels take 1..%d", (long long)D,
           HY_CUDA_ATTN_HEAD_MAX);
  return D <= 16 ? 16 : D <= 32 ? 32 : D <= 64 ? 64 : D <= 128 ? 128 : 256;
}

launch launch_of(const hy_attn_dims *d, const void *q, const void *k, const void *v,
                 const void *o) {
  launch L;
  L.a = attn_shape_of(d);
  L.B = (int)d->B;
  int64_t contiguous[3] = {d->T * d->H * d->D, d->H * d->D, d->D};
  L.vec4 = rows_vec4(q, d->q_stride, d->D) && rows_vec4(k, d->k_stride, d->D) &&
           rows_vec4(v, d->v_stride, d->D) && rows_vec4(o, contiguous, d->D);
  L.add_q = !(d->overwrite & HY_OVERWRITE_Q);
  L.add_k = !(d->overwrite & HY_OVERWRITE_K);
  L.add_v = !(d->overwrite & HY_OVERWRITE_V);
  return L;
}

} // namespace

extern "C" void cuda_attention_f32(const hy_attn_dims *dims, const float *q, const float *k,
                                   const float *v, float *o, float *lse) {
  if (dims->T == 0 || dims->B * dims->H == 0) return;
  launch L = launch_of(dims, q, k, v, o);
  switch (padded(dims->D)) {
  case 16: forward<16>(L, q, k, v, o, lse); break;
  case 32: forward<32>(L, q, k, v, o, lse); break;
  case 64: forward<64>(L, q, k, v, o, lse); break;
  case 128: forward<128>(L, q, k, v, o, lse); break;
  default: forward<256>(L, q, k, v, o, lse); break;
  }
}

/* delta lives in the step arena until the kernels that read it are queued; they run in stream
 * order, so the memory may be handed out again after that. */
extern "C" void cuda_attention_backward_f32(const hy_attn_dims *dims, const float *q,
                                            const float *k, const float *v, const float *o,
                                            const float *lse, const float *go, float *gq, float *gk,
                                            float *gv) {
  if (dims->T == 0 || dims->B * dims->H == 0 || (!gq && !gk && !gv)) return;
  launch L = launch_of(dims, q, k, v, o);
  L.vec4 = L.vec4 && aligned16(go) && (!gq || aligned16(gq)) && (!gk || aligned16(gk)) &&
           (!gv || aligned16(gv));
  hy_arena_mark mark = hy_arena_get_mark();
  const float *delta = attention_deltas(dims, o, go);
  switch (padded(dims->D)) {
  case 16: backward<16>(L, q, k, v, go, lse, delta, gq, gk, gv); break;
  case 32: backward<32>(L, q, k, v, go, lse, delta, gq, gk, gv); break;
  case 64: backward<64>(L, q, k, v, go, lse, delta, gq, gk, gv); break;
  case 128: backward<128>(L, q, k, v, go, lse, delta, gq, gk, gv); break;
  default: backward<256>(L, q, k, v, go, lse, delta, gq, gk, gv); break;
  }
  hy_arena_rewind(mark);
}
