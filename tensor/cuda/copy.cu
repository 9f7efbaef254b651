#include "tensor/cuda/common.cuh"

/* dst (+)= src over any strides, as cpu_copy: both padded to 4 dims, one thread per element.
 * The index type I is int where every offset fits (int division is several times cheaper than
 * int64_t's on the GPU, and this kernel is bound by its divisions, not by memory). */
struct copy_dims {
  int64_t shape[4], sd[4], ss[4];
};

template <typename I>
__global__ void copy_kernel(copy_dims c, I n, bool accumulate, float *dst, const float *src) {
  I shape[4], sd[4], ss[4];
  for (int d = 0; d < 4; d++) {
    shape[d] = (I)c.shape[d];
    sd[d] = (I)c.sd[d];
    ss[d] = (I)c.ss[d];
  }
  for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * blockDim.x) {
    I r = i, od = 0, os = 0;
    for (int d = 3; d >= 0; d--) {
      I idx = r % shape[d];
      r /= shape[d];
      od += idx * sd[d];
      os += idx * ss[d];
    }
    dst[od] = accumulate ? dst[od] + src[os] : src[os];
  }
}

/* Both packed in the same order: four elements a thread, no index arithmetic. */
__global__ void copy_flat4(int64_t n4, bool accumulate, float4 *dst, const float4 *src) {
  HY_GRID_STRIDE(i, n4) {
    float4 s = src[i];
    if (accumulate) {
      float4 d = dst[i];
      s.x += d.x, s.y += d.y, s.z += d.z, s.w += d.w;
    }
    dst[i] = s;
  }
}

/* The largest offset a view of these dims reaches, |stride| by extent. */
static int64_t reach(const copy_dims &c, const int64_t *stride) {
  int64_t r = 0;
  for (int d = 0; d < 4; d++) r += (c.shape[d] - 1) * (stride[d] < 0 ? -stride[d] : stride[d]);
  return r;
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
  float *d = (float *)dst->data;
  const float *s = (const float *)src->data;
  if (hy_is_contiguous(dst) && hy_is_contiguous(src) && n % 4 == 0 && (uintptr_t)d % 16 == 0 &&
      (uintptr_t)s % 16 == 0) {
    copy_flat4<<<hy_cuda_blocks(n / 4), HY_CUDA_THREADS>>>(n / 4, accumulate, (float4 *)d,
                                                           (const float4 *)s);
    HY_CUDA_LAUNCHED(copy_flat4);
  } else if (n <= INT32_MAX && reach(c, c.sd) <= INT32_MAX && reach(c, c.ss) <= INT32_MAX) {
    copy_kernel<int><<<hy_cuda_blocks(n), HY_CUDA_THREADS>>>(c, (int)n, accumulate, d, s);
    HY_CUDA_LAUNCHED(copy_kernel);
  } else {
    copy_kernel<int64_t><<<hy_cuda_blocks(n), HY_CUDA_THREADS>>>(c, n, accumulate, d, s);
    HY_CUDA_LAUNCHED(copy_kernel);
  }
}
