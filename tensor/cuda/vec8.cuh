/* Eight consecutive elements in 16-byte accesses, as f32 values: one access of bf16, two of f32
 * (tensor/cuda/bf16.cuh's ld4/st4 twice). The pointer aligned to 16 bytes. With the one-element
 * forms, a kernel templated on N (1 or 8) walks a row in scalar or vector steps. */
#ifndef HYLA_CUDA_VEC8_CUH
#define HYLA_CUDA_VEC8_CUH

#include "tensor/cuda/bf16.cuh"

__device__ __forceinline__ void ldn(const float *p, float (&v)[8]) {
  float4 a = ld4(p), b = ld4(p + 4);
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}
__device__ __forceinline__ void ldn(const bf16 *p, float (&v)[8]) {
  uint4 u = *reinterpret_cast<const uint4 *>(p);
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
  for (int i = 0; i < 4; i++) {
    float2 f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&w[i]));
    v[2 * i] = f.x, v[2 * i + 1] = f.y;
  }
}
__device__ __forceinline__ void stn(float *p, const float (&v)[8]) {
  st4(p, make_float4(v[0], v[1], v[2], v[3]));
  st4(p + 4, make_float4(v[4], v[5], v[6], v[7]));
}
__device__ __forceinline__ void stn(bf16 *p, const float (&v)[8]) {
  uint32_t w[4];
  for (int i = 0; i < 4; i++) {
    __nv_bfloat162 h = __floats2bfloat162_rn(v[2 * i], v[2 * i + 1]);
    w[i] = *reinterpret_cast<uint32_t *>(&h);
  }
  *reinterpret_cast<uint4 *>(p) = make_uint4(w[0], w[1], w[2], w[3]);
}
template <typename T> __device__ __forceinline__ void ldn(const T *p, float (&v)[1]) {
  v[0] = ld(p);
}
template <typename T> __device__ __forceinline__ void stn(T *p, const float (&v)[1]) {
  st(p, v[0]);
}

/* p[0..N) (+)= v: added to what is there when accumulate, else overwritten. */
template <int N, typename T>
__device__ __forceinline__ void stn_acc(T *p, bool accumulate, const float (&v)[N]) {
  float out[N];
  if (accumulate) ldn(p, out);
  for (int e = 0; e < N; e++) out[e] = accumulate ? out[e] + v[e] : v[e];
  stn(p, out);
}

/* Whether p can take 16-byte accesses (NULL: nothing to access, so yes). */
static inline bool hy_aligned16(const void *p) { return (uintptr_t)p % 16 == 0; }

#endif
