/* The optimizer's element loops on the GPU (optim/optimizer.c, optim/clip.c): the same updates,
 * in f32 with the step-size factors computed in double on the host. */
#include "tensor/cuda/common.cuh"

__global__ void adamw_kernel(int64_t n, float *w, float *m, float *v, const float *g, float lr,
                             float b1, float b2, float c1, float c2, float eps, float wd) {
  HY_GRID_STRIDE(j, n) {
    m[j] = b1 * m[j] + (1 - b1) * g[j];
    v[j] = b2 * v[j] + (1 - b2) * g[j] * g[j];
    float mhat = m[j] * c1, vhat = v[j] * c2;
    w[j] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * w[j]);
  }
}

extern "C" void cuda_adamw_f32(int64_t n, float *w, float *m, float *v, const float *g, double lr,
                               double b1, double b2, double c1, double c2, double eps, double wd) {
  if (n == 0) return;
  adamw_kernel<<<hy_cuda_blocks(n), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(
      n, w, m, v, g, (float)lr, (float)b1, (float)b2, (float)c1, (float)c2, (float)eps, (float)wd);
  HY_CUDA_LAUNCHED(adamw_kernel);
}

__global__ void sgd_kernel(int64_t n, float *w, float *b, const float *g, float lr, float mu,
                           float wd, bool first) {
  HY_GRID_STRIDE(j, n) {
    float gj = g[j] + wd * w[j];
    b[j] = first ? gj : mu * b[j] + gj;
    w[j] -= lr * b[j];
  }
}

extern "C" void cuda_sgd_f32(int64_t n, float *w, float *b, const float *g, double lr, double mu,
                             double wd, bool first) {
  if (n == 0) return;
  sgd_kernel<<<hy_cuda_blocks(n), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(
      n, w, b, g, (float)lr, (float)mu, (float)wd, first);
  HY_CUDA_LAUNCHED(sgd_kernel);
}

/* Sum of squares in double: per-block partial sums, then one block adds them in a fixed order,
 * so the result is the same on every run. */
enum { SQ_BLOCKS = 256 };

__global__ void partial_squares(int64_t n, const float *x, double *partial) {
  __shared__ double s[HY_CUDA_THREADS];
  double acc = 0;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    acc += (double)x[i] * x[i];
  s[threadIdx.x] = acc;
  __syncthreads();
  for (int k = blockDim.x / 2; k > 0; k /= 2) {
    if ((int)threadIdx.x < k) s[threadIdx.x] += s[threadIdx.x + k];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = s[0];
}

__global__ void sum_partials(int n, double *partial) {
  __shared__ double s[SQ_BLOCKS];
  s[threadIdx.x] = (int)threadIdx.x < n ? partial[threadIdx.x] : 0;
  __syncthreads();
  for (int k = blockDim.x / 2; k > 0; k /= 2) {
    if ((int)threadIdx.x < k) s[threadIdx.x] += s[threadIdx.x + k];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[0] = s[0];
}

extern "C" double cuda_sum_squares_f32(int64_t n, const float *x) {
  if (n == 0) return 0;
  double *partial = (double *)hy_arena_alloc_on(HY_CUDA, SQ_BLOCKS * sizeof(double));
  partial_squares<<<SQ_BLOCKS, HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(n, x, partial);
  HY_CUDA_LAUNCHED(partial_squares);
  sum_partials<<<1, SQ_BLOCKS, 0, hy_cuda_stream()>>>(SQ_BLOCKS, partial);
  HY_CUDA_LAUNCHED(sum_partials);
  double total = 0;
  HY_CUDA_CHECK(cudaMemcpy(&total, partial, sizeof total, cudaMemcpyDeviceToHost));
  return total;
}

__global__ void scale_kernel(int64_t n, float *x, float c) { HY_GRID_STRIDE(i, n) x[i] *= c; }

extern "C" void cuda_scale_inplace_f32(int64_t n, float *x, double c) {
  if (n == 0) return;
  scale_kernel<<<hy_cuda_blocks(n), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(n, x, (float)c);
  HY_CUDA_LAUNCHED(scale_kernel);
}
