/* The logistic function for CUDA kernels, as the CPU's (tensor/cpu/sigmoid.h): through e^-|x|,
 * which cannot overflow. */
#ifndef HYLA_CUDA_SIGMOID_CUH
#define HYLA_CUDA_SIGMOID_CUH

__device__ __forceinline__ float hy_sigmoidf(float x) {
  float e = expf(-fabsf(x));
  return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

#endif
