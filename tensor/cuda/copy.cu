#include "tensor/cuda/bf16.cuh"
#include "tensor/cuda/common.cuh"

/* dst (+)= src over any strides, as cpu_copy, converting between f32 and bf16 where the two
 * differ (TD and TS the storage types): both padded to 4 dims, one thread per element. The index
 * type I is int where every offset fits (int division is several times cheaper than int64_t's on
 * the GPU, and this kernel is bound by its divisions, not by memory). */
struct copy_dims {
  int64_t shape[4], sd[4], ss[4];
};

template <typename I, typename TD, typename TS>
__global__ void copy_kernel(copy_dims c, I n, bool accumulate, TD *dst, const TS *src) {
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
    float v = ld(src + os);
    st(dst + od, accumulate ? ld(dst + od) + v : v);
  }
}

/* Both packed in the same order: four elements a thread, no index arithmetic. */
template <typename TD, typename TS>
__global__ void copy_flat4(int64_t n4, bool accumulate, TD *dst, const TS *src) {
  HY_GRID_STRIDE(i, n4) {
    float4 s = ld4(src + 4 * i);
    if (accumulate) {
      float4 d = ld4(dst + 4 * i);
      s.x += d.x, s.y += d.y, s.z += d.z, s.w += d.w;
    }
    st4(dst + 4 * i, s);
  }
}

/* The largest offset a view of these dims reaches, |stride| by extent. */
static int64_t reach(const copy_dims &c, const int64_t *stride) {
  int64_t r = 0;
  for (int d = 0; d < 4; d++) r += (c.shape[d] - 1) * (stride[d] < 0 ? -stride[d] : stride[d]);
  return r;
}

template <typename TD, typename TS>
static void copy(const hy_tensor *dst_t, const hy_tensor *src, bool accumulate) {
  copy_dims c;
  int pad = 4 - src->ndim;
  for (int i = 0; i < 4; i++) {
    c.shape[i] = 1;
    c.sd[i] = c.ss[i] = 0;
  }
  for (int i = 0; i < src->ndim; i++) {
    c.shape[pad + i] = src->shape[i];
    c.sd[pad + i] = dst_t->stride[i];
    c.ss[pad + i] = src->stride[i];
  }
  int64_t n = c.shape[0] * c.shape[1] * c.shape[2] * c.shape[3];
  if (n == 0) return;
  TD *d = (TD *)dst_t->data;
  const TS *s = (const TS *)src->data;
  bool packed = hy_is_contiguous(dst_t) && hy_is_contiguous(src);
  if (packed && !accumulate && sizeof(TD) == sizeof(TS) && (void *)d != (const void *)s) {
    HY_CUDA_CHECK(
        cudaMemcpyAsync(d, s, (size_t)n * sizeof(TD), cudaMemcpyDeviceToDevice, hy_cuda_stream()));
  } else if (packed && n % 4 == 0 && hy_aligned4<TD>(d) && hy_aligned4<TS>(s)) {
    copy_flat4<<<hy_cuda_blocks(n / 4), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(n / 4, accumulate,
                                                                                d, s);
    HY_CUDA_LAUNCHED(copy_flat4);
  } else if (n <= INT32_MAX && reach(c, c.sd) <= INT32_MAX && reach(c, c.ss) <= INT32_MAX) {
    copy_kernel<int>
        <<<hy_cuda_blocks(n), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(c, (int)n, accumulate, d, s);
    HY_CUDA_LAUNCHED(copy_kernel);
  } else {
    copy_kernel<int64_t>
        <<<hy_cuda_blocks(n), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(c, n, accumulate, d, s);
    HY_CUDA_LAUNCHED(copy_kernel);
  }
}

extern "C" void cuda_convert(hy_tensor *dst, const hy_tensor *src, bool accumulate) {
  bool d16 = dst->dtype == HY_BF16, s16 = src->dtype == HY_BF16;
  if ((!d16 && dst->dtype != HY_F32) || (!s16 && src->dtype != HY_F32))
    hy_die("copy", "GPU copies take f32 and bf16, got %s into %s", hy_describe(src),
           hy_describe(dst));
  if (d16 && s16)
    copy<bf16, bf16>(dst, src, accumulate);
  else if (d16)
    copy<bf16, float>(dst, src, accumulate);
  else if (s16)
    copy<float, bf16>(dst, src, accumulate);
  else
    copy<float, float>(dst, src, accumulate);
}

extern "C" void cuda_copy_f32(hy_tensor *dst, const hy_tensor *src, bool accumulate) {
  cuda_convert(dst, src, accumulate);
}

extern "C" void cuda_copy_bf16(hy_tensor *dst, const hy_tensor *src, bool accumulate) {
  cuda_convert(dst, src, accumulate);
}

template <typename T> __global__ void fill_kernel(int64_t n, float value, T *x) {
  HY_GRID_STRIDE(i, n) st(x + i, value);
}

__global__ void fill_i32_kernel(int64_t n, int32_t value, int32_t *x) {
  HY_GRID_STRIDE(i, n) x[i] = value;
}

/* Every element of a packed GPU tensor set to value, by a kernel in order on the stream (no copy
 * from the host, so a CUDA graph can hold it). */
extern "C" void cuda_fill(hy_tensor *t, double value) {
  int64_t n = hy_numel(t);
  if (n == 0) return;
  unsigned blocks = hy_cuda_blocks(n);
  cudaStream_t s = hy_cuda_stream();
  switch (t->dtype) {
  case HY_F32:
    fill_kernel<<<blocks, HY_CUDA_THREADS, 0, s>>>(n, (float)value, (float *)t->data);
    break;
  case HY_BF16:
    fill_kernel<<<blocks, HY_CUDA_THREADS, 0, s>>>(n, (float)value, (bf16 *)t->data);
    break;
  case HY_I32:
    fill_i32_kernel<<<blocks, HY_CUDA_THREADS, 0, s>>>(n, (int32_t)value, (int32_t *)t->data);
    break;
  case HY_F64: hy_die("fill", "%s: GPU tensors are f32, bf16 or i32", hy_describe(t));
  }
  HY_CUDA_LAUNCHED(fill_kernel);
}
