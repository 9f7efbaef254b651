#include "tensor/cuda/attention_tiles.cuh"

#include <float.h>

/* Causal softplus attention with length scaling and re-weighting (LSSA / LSSAR) on the GPU in
 * f32: the twin of tensor/cpu/softplus_attention.c, on the tiles of attention.cu
 * (attention_tiles.cuh), with the CPU kernel's math. For query t the logits are
 * x_ts = c_t scale q_t . k_s with c_t = log(t + pos_offset + 1) / log(train_len) (1 when
 * train_len <= 1), the weights softplus(x_ts)^p for s <= t, normalized over s.
 *
 * The forward keeps, per query row, the largest logit m_t so far and the sum z_t of the ratios
 * (softplus(x) / softplus(m_t))^p (the exponential e^(x - m_t) instead of the ratio when
 * m_t < LOW, where softplus would underflow), rescaling the sum and the output when m_t grows, as
 * an online softmax does; m and z are saved ([B, H, T] each) and the backward recomputes the
 * weights from them. */

namespace {

constexpr float LOW = -20.f; /* the CPU's f32 bound: e^-20 / 2 = 1e-9 */

/* log(1 + e) for e in [0, 1] and u^p for u in [0, 1]: the CPU f32 kernel's series, so that both
 * devices round alike. log(1 + e) = 2 atanh(s), s = e / (2 + e), to s^15 / 15; u^p =
 * exp(p log u) with log u = n ln 2 + 2 atanh((m - 1) / (m + 1)) for u = m 2^n, m in
 * [sqrt(1/2), sqrt(2)), to s^9 / 9; below FLT_MIN u^p is 0. */
__device__ __forceinline__ float log1p_unit(float e) {
  float s = e / (2 + e), s2 = s * s, r = 1.0f / 15;
  r = fmaf(r, s2, 1.0f / 13);
  r = fmaf(r, s2, 1.0f / 11);
  r = fmaf(r, s2, 1.0f / 9);
  r = fmaf(r, s2, 1.0f / 7);
  r = fmaf(r, s2, 1.0f / 5);
  r = fmaf(r, s2, 1.0f / 3);
  r = fmaf(r, s2, 1.0f);
  return 2 * s * r;
}

__device__ __forceinline__ float pow_unit(float u, float p) {
  int bits = __float_as_int(u);
  int n = ((bits >> 23) & 0xff) - 127;
  float m = __int_as_float((bits & 0x007fffff) | 0x3f800000); /* m in [1, 2) */
  bool big = m > 1.41421356f;
  m = big ? 0.5f * m : m;
  n += big;
  float s = (m - 1) / (m + 1), s2 = s * s, r = 1.0f / 9;
  r = fmaf(r, s2, 1.0f / 7);
  r = fmaf(r, s2, 1.0f / 5);
  r = fmaf(r, s2, 1.0f / 3);
  r = fmaf(r, s2, 1.0f);
  float lg =
      fmaf((float)n, 0.693145751953125f, fmaf((float)n, 1.42860682030941723212e-6f, 2 * s * r));
  return u < FLT_MIN ? 0.0f : expf(p * lg);
}

__device__ __forceinline__ float softplus(float x) {
  return (x > 0.f ? x : 0.f) + log1p_unit(expf(-fabsf(x)));
}

/* softplus(x) / softplus(mx) for x <= mx, given inv = 1 / softplus(mx) (not used when low). */
__device__ __forceinline__ float ratio(float x, float mx, float inv, bool low) {
  return low ? expf(x - mx) : softplus(x) * inv;
}

struct softplus_rule {
  double scale, log_len; /* log(train_len); 1 without length scaling */
  int64_t pos_offset;
  bool scaled; /* train_len > 1 */
  float p;
  bool linear; /* p == 1 */
  int H, T;
  const float *m, *z, *delta; /* [B, H, T]: the saved maxima and sums, and dO_t . O_t */

  /* What pair() needs of query row t: c_t scale, m_t, 1 / softplus(m_t) (0 when low), 1 / z_t,
   * f = p / z_t c_t scale and delta_t. */
  struct row {
    float cs, m, inv, inv_z, f, dl;
  };

  /* c_t scale, computed in double and rounded once, as on the CPU. */
  __device__ float row_scale(int t) const {
    double c = scaled ? log((double)(t + pos_offset + 1)) / log_len : 1.0;
    return (float)(c * scale);
  }

  __device__ float power(float u) const { return linear ? u : pow_unit(u, p); }

  __device__ row row_of(int b, int h, int t, bool valid) const {
    row r = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    if (!valid) return r;
    int64_t i = ((int64_t)b * H + h) * T + t;
    r.cs = row_scale(t);
    r.m = m[i];
    r.inv = r.m < LOW ? 0.f : 1.f / softplus(r.m);
    r.inv_z = 1.f / z[i];
    r.f = p * r.inv_z * r.cs;
    r.dl = delta[i];
    return r;
  }

  /* With u = softplus(x) / softplus(m_t), the weight P = u^p / z_t and
   * dS = (dP - delta_t) p u^(p-1) [sigmoid(x) / softplus(m_t)] c_t scale / z_t, where the bracket
   * is u again in the tail and u^(p-1) = u^p / u (0 where u is 0): the CPU kernel's backward. */
  __device__ __forceinline__ weight_grad pair(const row &r, float s, float dp) const {
    float x = r.cs * s, e = expf(-fabsf(x)), inv = 1.f / (1.f + e);
    float sig = x >= 0.f ? inv : e * inv, sp = (x > 0.f ? x : 0.f) + log1p_unit(e);
    bool low = r.m < LOW;
    float u = low ? expf(x - r.m) : sp * r.inv, wu = power(u);
    float up = linear ? 1.f : (u > 0.f ? wu / u : 0.f);
    float sq = low ? u : sig * r.inv;
    return {wu * r.inv_z, (dp - r.dl) * r.f * sq * up};
  }
};

/* Forward: o and the rows' m and z. Grid (B H, query tiles), the tiles with the most keys first.
 * Shared memory: Q [BR, DP+4], K, V [BC, DP+4], P [BR, BC+16]. */
template <int DP, int BR, int BC, int RT>
__global__ void __launch_bounds__(BR / RT * 16)
    softplus_forward(tile_shape a, softplus_rule w, const float *q, const float *k, const float *v,
                     float *o, float *rmax, float *rsum, bool vec4) {
  constexpr int TY = BR / RT, THREADS = TY * 16, CT = BC / 16, N = DP / 16, LD = DP + 4,
                LDP = BC + 16;
  extern __shared__ float4 shm[];
  float *Qs = reinterpret_cast<float *>(shm), *Ks = Qs + BR * LD, *Vs = Ks + BC * LD,
        *Ps = Vs + BC * LD;
  const int ty = (int)threadIdx.x / 16, tx = (int)threadIdx.x % 16;
  const int b = (int)blockIdx.x / a.H, h = (int)blockIdx.x % a.H;
  const int i0 = (int)(gridDim.y - 1 - blockIdx.y) * BR, nq = min(BR, a.T - i0), j_end = i0 + nq;
  const float *qb = q + b * a.qs[0] + h * a.qs[2], *kb = k + b * a.ks[0] + h * a.ks[2],
              *vb = v + b * a.vs[0] + h * a.vs[2];

  load_tile<BR, DP, THREADS>(Qs, LD, qb + i0 * a.qs[1], a.qs[1], nq, a.D, vec4);
  load_tile<BC, DP, THREADS>(Ks, LD, kb, a.ks[1], min(BC, a.T), a.D, vec4);
  cp_async_commit();

  /* Per row: c_t scale, the largest logit so far and this thread's part of z (summed over the
   * row's threads at the end). */
  float cs[RT], m[RT], l[RT], acc[RT][N];
#pragma unroll
  for (int i = 0; i < RT; i++) {
    cs[i] = w.row_scale(i0 + ty + TY * i);
    m[i] = -INFINITY;
    l[i] = 0.f;
#pragma unroll
    for (int e = 0; e < N; e++) acc[i][e] = 0.f;
  }

  for (int j0 = 0; j0 < j_end; j0 += BC) {
    cp_async_wait<0>(); /* K (and Q) */
    __syncthreads();
    load_tile<BC, DP, THREADS>(Vs, LD, vb + j0 * a.vs[1], a.vs[1], min(BC, a.T - j0), a.D, vec4);
    cp_async_commit();

    float s[RT][CT];
#pragma unroll
    for (int i = 0; i < RT; i++)
#pragma unroll
      for (int j = 0; j < CT; j++) s[i][j] = 0.f;
    product_abt<RT, CT, TY, DP>(s, Qs, LD, Ks, LD, ty, tx);
    __syncthreads(); /* K is read, the last tile's P too */
    if (j0 + BC < j_end)
      load_tile<BC, DP, THREADS>(Ks, LD, kb + (j0 + BC) * a.ks[1], a.ks[1], min(BC, a.T - j0 - BC),
                                 a.D, vec4);
    cp_async_commit();

    bool mask = j0 + BC - 1 > i0; /* a key of the tile is after some query's position */
#pragma unroll
    for (int i = 0; i < RT; i++) {
      int t = i0 + ty + TY * i;
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < CT; j++) {
        float x = s[i][j] * cs[i];
        if (mask && j0 + tx + 16 * j > t) x = -INFINITY;
        s[i][j] = x;
        mx = fmaxf(mx, x);
      }
      mx = fmaxf(m[i], row_max(mx)); /* the same in the row's 16 threads */
      bool low = mx < LOW;
      float inv = low ? 0.f : 1.f / softplus(mx);
      if (mx > m[i]) { /* rescale what the row has so far to the new maximum */
        float alpha = m[i] == -INFINITY ? 0.f : w.power(ratio(m[i], mx, inv, low));
        l[i] *= alpha;
#pragma unroll
        for (int e = 0; e < N; e++) acc[i][e] *= alpha;
        m[i] = mx;
      }
      float sum = 0.f;
#pragma unroll
      for (int j = 0; j < CT; j++) {
        float p = s[i][j] == -INFINITY ? 0.f : w.power(ratio(s[i][j], mx, inv, low));
        sum += p;
        Ps[(ty + TY * i) * LDP + tx + 16 * j] = p;
      }
      l[i] += sum;
    }
    cp_async_wait<1>(); /* V */
    __syncthreads();
    product_ab<RT, BC, TY, DP>(acc, Ps, LDP, Vs, LD, ty, tx);
  }

#pragma unroll
  for (int i = 0; i < RT; i++) {
    float z = row_sum(l[i]);
    int r = ty + TY * i;
    if (r >= nq) continue;
    float inv = 1.f / z;
#pragma unroll
    for (int e = 0; e < N; e++) acc[i][e] *= inv;
    int64_t t = i0 + r;
    store_row<DP>(o + ((b * (int64_t)a.T + t) * a.H + h) * a.D, acc[i], a.D, tx, vec4, false);
    if (tx == 0) {
      int64_t at = ((int64_t)b * a.H + h) * a.T + t;
      rmax[at] = m[i];
      rsum[at] = z;
    }
  }
}

/* delta[b, h, t] = go[b, t, h, :] . o[b, t, h, :]: one warp per row. */
__global__ void softplus_delta(int64_t rows, int T, int H, int D, const float *o, const float *go,
                               float *delta) {
  int ln = (int)threadIdx.x % 32;
  int64_t w = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32,
          nw = (int64_t)gridDim.x * blockDim.x / 32;
  for (int64_t r = w; r < rows; r += nw) {
    const float *x = o + r * D, *g = go + r * D;
    float s = 0.f;
    for (int d = ln; d < D; d += 32) s = fmaf(x[d], g[d], s);
#pragma unroll
    for (int m = 16; m >= 1; m /= 2) s += __shfl_xor_sync(0xffffffffu, s, m);
    if (ln == 0) {
      int64_t bt = r / H, b = bt / T, t = bt % T, h = r % H;
      delta[(b * H + h) * T + t] = s;
    }
  }
}

template <int DP>
void forward(const tile_launch &L, const softplus_rule &w, const float *q, const float *k,
             const float *v, float *o, float *rmax, float *rsum) {
  constexpr int BR = tile_cfg<DP>::F_BR, BC = tile_cfg<DP>::F_BC, RT = tile_cfg<DP>::F_RT;
  static bool done;
  auto kernel = softplus_forward<DP, BR, BC, RT>;
  size_t bytes = sizeof(float) * (size_t)(BR * (DP + 4) + 2 * BC * (DP + 4) + BR * (BC + 16));
  hy_allow_shared(kernel, bytes, &done);
  dim3 grid((unsigned)(L.B * L.a.H), tile_count(L, L.a.T, BR));
  kernel<<<grid, BR / RT * 16, bytes, hy_cuda_stream()>>>(L.a, w, q, k, v, o, rmax, rsum, L.vec4);
  HY_CUDA_LAUNCHED(softplus_forward);
}

const char *const OP = "softplus_attention";

softplus_rule rule_of(const hy_attn_dims *d, int64_t train_len, int64_t pos_offset, double power) {
  softplus_rule w;
  w.scale = d->scale;
  w.scaled = train_len > 1;
  w.log_len = w.scaled ? log((double)train_len) : 1.0;
  w.pos_offset = pos_offset;
  w.p = (float)power;
  w.linear = power == 1;
  w.H = (int)d->H;
  w.T = (int)d->T;
  w.m = w.z = w.delta = NULL;
  return w;
}

} // namespace

extern "C" void cuda_softplus_attention_f32(const hy_attn_dims *dims, int64_t train_len,
                                            int64_t pos_offset, double power, const float *q,
                                            const float *k, const float *v, float *o, float *rmax,
                                            float *rsum) {
  if (dims->T == 0 || dims->B * dims->H == 0 || dims->D == 0) return;
  tile_launch L = tile_launch_of(OP, dims, q, k, v, o);
  softplus_rule w = rule_of(dims, train_len, pos_offset, power);
  switch (tile_padded(OP, dims->D)) {
  case 16: forward<16>(L, w, q, k, v, o, rmax, rsum); break;
  case 32: forward<32>(L, w, q, k, v, o, rmax, rsum); break;
  case 64: forward<64>(L, w, q, k, v, o, rmax, rsum); break;
  case 128: forward<128>(L, w, q, k, v, o, rmax, rsum); break;
  default: forward<256>(L, w, q, k, v, o, rmax, rsum); break;
  }
}

extern "C" void cuda_softplus_attention_backward_f32(const hy_attn_dims *dims, int64_t train_len,
                                                     int64_t pos_offset, double power,
                                                     const float *q, const float *k, const float *v,
                                                     const float *o, const float *rmax,
                                                     const float *rsum, const float *go, float *gq,
                                                     float *gk, float *gv) {
  if (dims->T == 0 || dims->B * dims->H == 0 || dims->D == 0 || (!gq && !gk && !gv)) return;
  tile_launch L = tile_launch_of(OP, dims, q, k, v, o);
  L.vec4 = L.vec4 && aligned16(go) && (!gq || aligned16(gq)) && (!gk || aligned16(gk)) &&
           (!gv || aligned16(gv));
  int DP = tile_padded(OP, dims->D);
  /* delta lives in the step arena until the kernels that read it are queued; they run in
   * stream order, so the memory may be handed out again after that. */
  hy_arena_mark mark = hy_arena_get_mark();
  int64_t rows = dims->B * dims->T * dims->H;
  float *delta = (float *)hy_arena_alloc_on(HY_CUDA, sizeof(float) * (size_t)rows);
  softplus_delta<<<hy_cuda_blocks(rows * 32), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(
      rows, (int)dims->T, (int)dims->H, (int)dims->D, o, go, delta);
  HY_CUDA_LAUNCHED(softplus_delta);
  softplus_rule w = rule_of(dims, train_len, pos_offset, power);
  w.m = rmax;
  w.z = rsum;
  w.delta = delta;
  tiles_backward_any(DP, L, w, q, k, v, go, gq, gk, gv);
  hy_arena_rewind(mark);
}
