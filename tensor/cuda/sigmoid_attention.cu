#include "tensor/cuda/attention_tiles.cuh"

/* Causal sigmoid attention (FlashSigmoid) on the GPU in f32: the twin of
 * tensor/cpu/sigmoid_attention.c, o_t = sum_{s <= t} sigmoid(scale q_t . k_s + bias) v_s, on the
 * tiles of attention.cu (attention_tiles.cuh). The weights are not normalized over s, so the
 * forward keeps no row statistics and the backward recomputes the weights from q and k:
 * dS = scale dP P (1 - P). */

namespace {

struct sigmoid_rule {
  float scale, bias;
  struct row {}; /* nothing per query row */

  __device__ row row_of(int, int, int, bool) const { return row{}; }

  /* e = exp(-|x|) gives sigmoid(x) and sigmoid'(x) = e / (1 + e)^2 without overflow, as on the
   * CPU. */
  __device__ __forceinline__ weight_grad pair(const row &, float s, float dp) const {
    float x = s * scale + bias, e = expf(-fabsf(x)), inv = 1.f / (1.f + e);
    return {x >= 0.f ? inv : e * inv, dp * (scale * e * inv * inv)};
  }
};

/* Forward: o = sigmoid(scale q k^T + bias, causal) v. Grid (B H, query tiles), the tiles with
 * the most keys first. Shared memory: Q [BR, DP+4], K, V [BC, DP+4], P [BR, BC+16]. */
template <int DP, int BR, int BC, int RT>
__global__ void __launch_bounds__(BR / RT * 16)
    sigmoid_forward(tile_shape a, sigmoid_rule w, const float *q, const float *k, const float *v,
                    float *o, bool vec4) {
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

  float acc[RT][N];
#pragma unroll
  for (int i = 0; i < RT; i++)
#pragma unroll
    for (int e = 0; e < N; e++) acc[i][e] = 0.f;

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
#pragma unroll
      for (int j = 0; j < CT; j++) {
        float p = w.pair(sigmoid_rule::row{}, s[i][j], 0.f).p;
        if (mask && j0 + tx + 16 * j > t) p = 0.f;
        Ps[(ty + TY * i) * LDP + tx + 16 * j] = p;
      }
    }
    cp_async_wait<1>(); /* V */
    __syncthreads();
    product_ab<RT, BC, TY, DP>(acc, Ps, LDP, Vs, LD, ty, tx);
  }

#pragma unroll
  for (int i = 0; i < RT; i++) {
    int r = ty + TY * i;
    if (r < nq)
      store_row<DP>(o + ((b * (int64_t)a.T + i0 + r) * a.H + h) * a.D, acc[i], a.D, tx, vec4,
                    false);
  }
}

template <int DP>
void forward(const tile_launch &L, const sigmoid_rule &w, const float *q, const float *k,
             const float *v, float *o) {
  constexpr int BR = tile_cfg<DP>::F_BR, BC = tile_cfg<DP>::F_BC, RT = tile_cfg<DP>::F_RT;
  static bool done;
  auto kernel = sigmoid_forward<DP, BR, BC, RT>;
  size_t bytes = sizeof(float) * (size_t)(BR * (DP + 4) + 2 * BC * (DP + 4) + BR * (BC + 16));
  hy_allow_shared(kernel, bytes, &done);
  dim3 grid((unsigned)(L.B * L.a.H), tile_count(L, L.a.T, BR));
  kernel<<<grid, BR / RT * 16, bytes, hy_cuda_stream()>>>(L.a, w, q, k, v, o, L.vec4);
  HY_CUDA_LAUNCHED(sigmoid_forward);
}

const char *const OP = "sigmoid_attention";

} // namespace

extern "C" void cuda_sigmoid_attention_f32(const hy_attn_dims *dims, double bias, const float *q,
                                           const float *k, const float *v, float *o) {
  if (dims->T == 0 || dims->B * dims->H == 0 || dims->D == 0) return;
  tile_launch L = tile_launch_of(OP, dims, q, k, v, o);
  sigmoid_rule w = {(float)dims->scale, (float)bias};
  switch (tile_padded(OP, dims->D)) {
  case 16: forward<16>(L, w, q, k, v, o); break;
  case 32: forward<32>(L, w, q, k, v, o); break;
  case 64: forward<64>(L, w, q, k, v, o); break;
  case 128: forward<128>(L, w, q, k, v, o); break;
  default: forward<256>(L, w, q, k, v, o); break;
  }
}

extern "C" void cuda_sigmoid_attention_backward_f32(const hy_attn_dims *dims, double bias,
                                                    const float *q, const float *k, const float *v,
                                                    const float *go, float *gq, float *gk,
                                                    float *gv) {
  if (dims->T == 0 || dims->B * dims->H == 0 || dims->D == 0 || (!gq && !gk && !gv)) return;
  tile_launch L = tile_launch_of(OP, dims, q, k, v, go);
  L.vec4 = L.vec4 && (!gq || aligned16(gq)) && (!gk || aligned16(gk)) && (!gv || aligned16(gv));
  sigmoid_rule w = {(float)dims->scale, (float)bias};
  tiles_backward_any(tile_padded(OP, dims->D), L, w, q, k, v, go, gq, gk, gv);
}
