/* bf16 storage for the CUDA kernels: values load to f32, compute in f32 and round back once on
 * store (to nearest even). A kernel templated on its storage type T (float or bf16) is one source
 * for both; ld/st convert, and ld4/st4 move four consecutive elements in one access (16 bytes of
 * f32, 8 of bf16; the pointer aligned to that). */
#ifndef HYLA_CUDA_BF16_CUH
#define HYLA_CUDA_BF16_CUH

#include <cuda_bf16.h>
#include <stdint.h>

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ float ld(const float *p) { return *p; }
__device__ __forceinline__ float ld(const bf16 *p) { return __bfloat162float(*p); }
__device__ __forceinline__ void st(float *p, float v) { *p = v; }
__device__ __forceinline__ void st(bf16 *p, float v) { *p = __float2bfloat16_rn(v); }

__device__ __forceinline__ float4 ld4(const float *p) {
  return *reinterpret_cast<const float4 *>(p);
}
__device__ __forceinline__ float4 ld4(const bf16 *p) {
  uint2 u = *reinterpret_cast<const uint2 *>(p);
  float2 lo = __bfloat1622float2(*reinterpret_cast<__nv_bfloat162 *>(&u.x));
  float2 hi = __bfloat1622float2(*reinterpret_cast<__nv_bfloat162 *>(&u.y));
  return make_float4(lo.x, lo.y, hi.x, hi.y);
}
__device__ __forceinline__ void st4(float *p, float4 v) { *reinterpret_cast<float4 *>(p) = v; }
__device__ __forceinline__ void st4(bf16 *p, float4 v) {
  __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
  uint2 u = make_uint2(*reinterpret_cast<uint32_t *>(&lo), *reinterpret_cast<uint32_t *>(&hi));
  *reinterpret_cast<uint2 *>(p) = u;
}

/* Whether p can take ld4/st4 of type T. */
template <typename T> static inline bool hy_aligned4(const void *p) {
  return (uintptr_t)p % (4 * sizeof(T)) == 0;
}

#endif
