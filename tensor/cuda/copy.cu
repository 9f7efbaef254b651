#include "tensor/cuda/common.cuh"

/* dst (+)= src over any strides, as cpu_copy: both padded to 4 dims, one thread per element. */
struct copy_dims {
  int64_t shape[4], sd[4], ss[4];
};

__global__ void copy_kernel(copy_dims c, int64_t n, bool accumulate, float *dst, const float *src) {
  HY_GRID_STRIDE(i, n) {
    int64_t r = i, od = 0, os = 0;
    for (int d = 3; d >= 0; d--) {
      int64_t idx = r % c.shape[d];
      r /= c.shape[d];
      od += idx * c.sd[d];
      os += idx * c.ss[d];
    }
    dst[od] = accumulate ? dst[od] + src[os] : src[os];
  }
}

extern "C" void cuda_copy_f32(hy_tensor *dst, const hy_tensor *src, bool accumulate) {
  copy_dims c;
  int pad = 4 - src->ndim;
  for (int i = 0; i < 4; i++) {
    c.shape[i] = 1;
    c.sd[i] = c.ss[i] = 0;
  }
  for (int i = 0; i < src->ndim; i++) {
    c.shape[pad + i] = src->shape[i];
    c.sd[pad + i] = dst->stride[i];
    c.ss[pad + i] = src->stride[i];
  }
  int64_t n = c.shape[0] * c.shape[1] * c.shape[2] * c.shape[3];
  if (n == 0) return;
  copy_kernel<<<hy_cuda_blocks(n), HY_CUDA_THREADS>>>(c, n, accumulate, (float *)dst->data,
                                                      (const float *)src->data);
  HY_CUDA_LAUNCHED(copy_kernel);
}
