/* Elementwise maps over packed tensors for the memory-bound kernels (unary.cu, binary.cu): one
 * template over the storage type T (float or bf16; values compute in f32 and round once on
 * store). Where every pointer allows it, each thread moves four consecutive elements with one
 * access per tensor (ld4/st4), and the first n % 4 threads of the grid take the tail; otherwise one
 * element a thread. */
#ifndef HYLA_CUDA_ELEMENTWISE_CUH
#define HYLA_CUDA_ELEMENTWISE_CUH

#include "tensor/cuda/bf16.cuh"
#include "tensor/cuda/common.cuh"

/* NI inputs and NO outputs of n elements each. A NULL input is not read (the map sees 0 there: an
 * operand its formula does not need); a NULL output is not written. acc[o]: add into output o
 * instead of overwriting it (a gradient that already holds a sum). Outputs are written in order,
 * so output 1 adds onto what output 0 just stored when the two are one buffer (x * x). */
template <typename T, int NI, int NO> struct map_io {
  const T *in[NI];
  T *out[NO];
  bool acc[NO];
};

/* Lane j of a float4 (j a constant after unrolling: the value stays in a register). */
__device__ __forceinline__ float &lane(float4 &v, int j) {
  return reinterpret_cast<float *>(&v)[j];
}

template <typename T, int NI, int NO, typename F>
__device__ __forceinline__ void map_one(const map_io<T, NI, NO> &io, int64_t i, const F &f) {
  float x[NI], y[NO];
#pragma unroll
  for (int k = 0; k < NI; k++) x[k] = io.in[k] ? ld(io.in[k] + i) : 0.0f;
  f(x, y);
#pragma unroll
  for (int o = 0; o < NO; o++)
    if (io.out[o]) st(io.out[o] + i, io.acc[o] ? ld(io.out[o] + i) + y[o] : y[o]);
}

template <typename T, int NI, int NO, typename F>
__global__ void map_scalar(int64_t n, map_io<T, NI, NO> io, F f) {
  HY_GRID_STRIDE(i, n) map_one(io, i, f);
}

template <typename T, int NI, int NO, typename F>
__global__ void map_vec4(int64_t n, map_io<T, NI, NO> io, F f) {
  int64_t n4 = n / 4;
  HY_GRID_STRIDE(i, n4) {
    float4 x[NI], y[NO];
#pragma unroll
    for (int k = 0; k < NI; k++) x[k] = io.in[k] ? ld4(io.in[k] + 4 * i) : make_float4(0, 0, 0, 0);
#pragma unroll
    for (int j = 0; j < 4; j++) {
      float xj[NI], yj[NO];
#pragma unroll
      for (int k = 0; k < NI; k++) xj[k] = lane(x[k], j);
      f(xj, yj);
#pragma unroll
      for (int o = 0; o < NO; o++) lane(y[o], j) = yj[o];
    }
#pragma unroll
    for (int o = 0; o < NO; o++) {
      if (!io.out[o]) continue;
      T *p = io.out[o] + 4 * i;
      if (io.acc[o]) {
        float4 old = ld4(p);
        y[o].x += old.x, y[o].y += old.y, y[o].z += old.z, y[o].w += old.w;
      }
      st4(p, y[o]);
    }
  }
  int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (t < n - 4 * n4) map_one(io, 4 * n4 + t, f);
}

/* Runs f over n elements: f(const float x[NI], float y[NO]) computes one element. */
template <typename T, int NI, int NO, typename F>
static void map_launch(int64_t n, const map_io<T, NI, NO> &io, F f) {
  if (n <= 0) return;
  bool vec = true;
  for (int k = 0; k < NI; k++) vec = vec && (!io.in[k] || hy_aligned4<T>(io.in[k]));
  for (int o = 0; o < NO; o++) vec = vec && (!io.out[o] || hy_aligned4<T>(io.out[o]));
  cudaStream_t s = hy_cuda_stream();
  if (vec) {
    map_vec4<<<hy_cuda_blocks(n / 4), HY_CUDA_THREADS, 0, s>>>(n, io, f);
    HY_CUDA_LAUNCHED(map_vec4);
  } else {
    map_scalar<<<hy_cuda_blocks(n), HY_CUDA_THREADS, 0, s>>>(n, io, f);
    HY_CUDA_LAUNCHED(map_scalar);
  }
}

#endif
