#include "tensor/cuda/bf16.cuh"
#include "tensor/cuda/common.cuh"

#include <math.h>

/* Cross entropy over rows of V logits (f32 or bf16 storage, f32 arithmetic), the twins of
 * tensor/cpu/cross_entropy.c. One block per row (grid-stride over the rows); its threads read
 * the row in 16-byte vectors (4 f32 or 8 bf16 values), with scalars before the first 16-byte
 * boundary and after the last. The count, the loss and the loss's gradient stay in device memory:
 * nothing here waits for the GPU or copies to the host, so a CUDA graph can hold every launch. */

static unsigned row_blocks(int64_t rows) {
  return (unsigned)(rows < 65535 * 16 ? rows : 65535 * 16);
}

static constexpr int MAX_ROW_THREADS = 1024;

/* Threads for a row of V values of T: about four 16-byte vectors each (their loads issue
 * together), a multiple of 32 from 32 to 1024. Large blocks keep fewer rows in flight, so that a
 * row read twice (the fused gradient) is still in L2 the second time. */
template <typename T> static int row_threads(int64_t V) {
  int64_t per = 4 * (16 / (int64_t)sizeof(T)), t = (V + per - 1) / per;
  t = (t + 31) / 32 * 32;
  return (int)(t < 32 ? 32 : t > MAX_ROW_THREADS ? MAX_ROW_THREADS : t);
}

/* 16 bytes of T (4 f32 or 8 bf16 values) as floats, and back. A thread holds its loads packed
 * (4 registers each) until it uses them. */
template <typename T> __device__ void unpack16(uint4 u, float *v);
template <> __device__ __forceinline__ void unpack16<float>(uint4 u, float *v) {
  v[0] = __uint_as_float(u.x), v[1] = __uint_as_float(u.y);
  v[2] = __uint_as_float(u.z), v[3] = __uint_as_float(u.w);
}
template <> __device__ __forceinline__ void unpack16<bf16>(uint4 u, float *v) {
  const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&u);
#pragma unroll
  for (int i = 0; i < 4; i++) {
    float2 f = __bfloat1622float2(h[i]);
    v[2 * i] = f.x, v[2 * i + 1] = f.y;
  }
}
template <typename T> __device__ uint4 pack16(const float *v);
template <> __device__ __forceinline__ uint4 pack16<float>(const float *v) {
  return make_uint4(__float_as_uint(v[0]), __float_as_uint(v[1]), __float_as_uint(v[2]),
                    __float_as_uint(v[3]));
}
template <> __device__ __forceinline__ uint4 pack16<bf16>(const float *v) {
  uint4 u;
  __nv_bfloat162 *h = reinterpret_cast<__nv_bfloat162 *>(&u);
#pragma unroll
  for (int i = 0; i < 4; i++) h[i] = __floats2bfloat162_rn(v[2 * i], v[2 * i + 1]);
  return u;
}
/* The pointer 16-byte aligned. */
template <typename T> __device__ __forceinline__ uint4 load16(const T *p) {
  return *reinterpret_cast<const uint4 *>(p);
}
template <typename T> __device__ __forceinline__ void store16(T *p, uint4 u) {
  *reinterpret_cast<uint4 *>(p) = u;
}

/* A row at p of V values: scalars in [0, head), 16-byte vectors in [head, body), scalars in
 * [body, V). Without vec the whole row is scalars. */
struct row_parts {
  int64_t head, body;
};

template <typename T> __device__ row_parts split_row(const T *p, int64_t V, bool vec) {
  constexpr int N = 16 / sizeof(T);
  if (!vec) return {V, V};
  int64_t off = (int64_t)((uintptr_t)p / sizeof(T) % N), head = off ? N - off : 0;
  if (head > V) head = V;
  return {head, head + (V - head) / N * N};
}

/* Each thread takes U vectors of the row at a time: their loads are issued together, before any
 * of their arithmetic, so that U of them are in flight at once. */
static constexpr int U = 4;

/* f(j, x, n) on the row's values x[0..n) of columns j..j+n-1, the block's threads sharing the
 * row. */
template <typename T, typename F> __device__ void read_row(const T *p, int64_t V, F f) {
  constexpr int N = 16 / sizeof(T);
  row_parts r = split_row(p, V, true);
  for (int64_t j = threadIdx.x; j < r.head; j += blockDim.x) {
    float x = ld(p + j);
    f(j, &x, 1);
  }
  const int64_t step = N * (int64_t)blockDim.x;
  for (int64_t j = r.head + N * (int64_t)threadIdx.x; j < r.body; j += U * step) {
    uint4 raw[U];
#pragma unroll
    for (int u = 0; u < U; u++)
      if (j + u * step < r.body) raw[u] = load16(p + j + u * step);
#pragma unroll
    for (int u = 0; u < U; u++)
      if (j + u * step < r.body) {
        float x[N];
        unpack16<T>(raw[u], x);
        f(j + u * step, x, N);
      }
  }
  for (int64_t j = r.body + threadIdx.x; j < V; j += blockDim.x) {
    float x = ld(p + j);
    f(j, &x, 1);
  }
}

/* g = f(j, x, g, n) over the row: x the values of src, g those of dst when accumulate, else 0;
 * the results stored to dst (which may be src). vec: src and dst share their offset from a
 * 16-byte boundary. */
template <typename T, typename F>
__device__ void rewrite_row(const T *src, T *dst, int64_t V, bool vec, bool accumulate, F f) {
  constexpr int N = 16 / sizeof(T);
  row_parts r = split_row(dst, V, vec);
  for (int64_t j = threadIdx.x; j < r.head; j += blockDim.x) {
    float x = ld(src + j), g = accumulate ? ld(dst + j) : 0.0f;
    f(j, &x, &g, 1);
    st(dst + j, g);
  }
  const int64_t step = N * (int64_t)blockDim.x;
  for (int64_t j = r.head + N * (int64_t)threadIdx.x; j < r.body; j += U * step) {
    uint4 raw_x[U], raw_g[U];
#pragma unroll
    for (int u = 0; u < U; u++) {
      if (j + u * step >= r.body) continue;
      raw_x[u] = load16(src + j + u * step);
      if (accumulate) raw_g[u] = load16(dst + j + u * step);
    }
#pragma unroll
    for (int u = 0; u < U; u++) {
      if (j + u * step >= r.body) continue;
      float x[N], g[N] = {};
      unpack16<T>(raw_x[u], x);
      if (accumulate) unpack16<T>(raw_g[u], g);
      f(j + u * step, x, g, N);
      store16(dst + j + u * step, pack16<T>(g));
    }
  }
  for (int64_t j = r.body + threadIdx.x; j < V; j += blockDim.x) {
    float x = ld(src + j), g = accumulate ? ld(dst + j) : 0.0f;
    f(j, &x, &g, 1);
    st(dst + j, g);
  }
}

template <typename T> __device__ void zero_row(T *dst, int64_t V, bool vec) {
  constexpr int N = 16 / sizeof(T);
  row_parts r = split_row(dst, V, vec);
  for (int64_t j = threadIdx.x; j < r.head; j += blockDim.x) st(dst + j, 0.0f);
  for (int64_t j = r.head + N * (int64_t)threadIdx.x; j < r.body; j += N * (int64_t)blockDim.x)
    store16(dst + j, make_uint4(0, 0, 0, 0));
  for (int64_t j = r.body + threadIdx.x; j < V; j += blockDim.x) st(dst + j, 0.0f);
}

/* A running log-sum-exp (m, s): the values seen sum to s e^m, m their max. n new values rescale s
 * once when they raise the max; -inf adds nothing (and would make -inf - -inf); NaN propagates
 * (fmaxf skips it, the sum does not). */
__device__ __forceinline__ void lse_add(float &m, float &s, const float *x, int n) {
  float mx = m;
  for (int i = 0; i < n; i++) mx = fmaxf(mx, x[i]);
  if (mx > m) {
    s *= expf(m - mx);
    m = mx;
  }
  for (int i = 0; i < n; i++) {
    float e = expf(x[i] - m);
    s += x[i] == -INFINITY ? 0.0f : e;
  }
}

__device__ static inline void lse_merge(float &m, float &s, float m2, float s2) {
  float mm = fmaxf(m, m2);
  if (mm == -INFINITY) { /* nothing but -inf on either side */
    s += s2;
    return;
  }
  s = s * expf(m - mm) + s2 * expf(m2 - mm);
  m = mm;
}

/* Merge every thread's (m, s) into the block's, returned to all threads. blockDim.x is a multiple
 * of 32; the merge order is fixed by the block size, so results are reproducible. Ends with a
 * barrier: every thread has finished what it did before the call. */
__device__ static void block_lse(float &m, float &s) {
  __shared__ float sm[32], ss[32];
  for (int o = 16; o > 0; o >>= 1) {
    float m2 = __shfl_down_sync(0xffffffffu, m, o), s2 = __shfl_down_sync(0xffffffffu, s, o);
    lse_merge(m, s, m2, s2);
  }
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  if (lane == 0) {
    sm[warp] = m;
    ss[warp] = s;
  }
  __syncthreads();
  if (warp == 0) {
    m = lane < n_warps ? sm[lane] : -INFINITY;
    s = lane < n_warps ? ss[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) {
      float m2 = __shfl_down_sync(0xffffffffu, m, o), s2 = __shfl_down_sync(0xffffffffu, s, o);
      lse_merge(m, s, m2, s2);
    }
    if (lane == 0) {
      sm[0] = m;
      ss[0] = s;
    }
  }
  __syncthreads();
  m = sm[0];
  s = ss[0];
  __syncthreads(); /* sm and ss are free again for the next row */
}

/* ---- the count of targets that are not ignored ---- */

__global__ void count_kernel(int64_t rows, const int32_t *targets, int ignore_index,
                             int64_t *count) {
  long long n = 0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) n += targets[r] != ignore_index;
  n = hy_block_sum(n);
  if (threadIdx.x == 0) *count = (int64_t)n;
}

extern "C" void cuda_cross_entropy_count_f32(int64_t rows, const int32_t *targets, int ignore_index,
                                             int64_t *count) {
  count_kernel<<<1, MAX_ROW_THREADS, 0, hy_cuda_stream()>>>(rows, targets, ignore_index, count);
  HY_CUDA_LAUNCHED(count_kernel);
}

/* ---- per row: log-sum-exp, loss, and for the fused op the gradient in place ---- */

/* As cpu_cross_entropy_rows: lse[r] (lse not NULL), row_loss[r] in double (0 when ignored; NaN
 * for a target outside [0, V) that is not ignore_index: nothing outside the row is read, and the
 * loss shows it), and with count the row overwritten by (softmax - onehot) / count (NaN for such
 * a target, 0 when ignored). Ignored rows skip the log-sum-exp. */
template <typename T>
__global__ void __launch_bounds__(MAX_ROW_THREADS)
    rows_kernel(int64_t rows, int64_t V, T *logits, const int32_t *targets, int ignore_index,
                float *lse, double *row_loss, const int64_t *count) {
  float c = count && *count ? (float)(1.0 / (double)*count) : 0.0f;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    T *x = logits + r * V;
    int64_t t = targets[r];
    if (t == ignore_index) { /* the same for the whole block */
      if (threadIdx.x == 0) row_loss[r] = 0.0;
      if (count) zero_row(x, V, true);
      continue;
    }
    bool valid = t >= 0 && t < V;
    float xt = threadIdx.x == 0 && valid ? ld(x + t) : 0.0f; /* before the row is overwritten */
    float m = -INFINITY, s = 0.0f;
    read_row(x, V, [&](int64_t, const float *v, int n) { lse_add(m, s, v, n); });
    block_lse(m, s); /* its barrier: all reads of the row are done before the writes below */
    /* As the CPU: the max plus the log of the sum, in double, rounded once. */
    float l = (float)((double)m + log((double)s));
    if (threadIdx.x == 0) {
      if (lse) lse[r] = l;
      row_loss[r] = valid ? (double)l - (double)xt : (double)NAN;
    }
    if (!count) continue;
    rewrite_row(x, x, V, true, false, [&](int64_t j, const float *v, float *g, int n) {
      for (int i = 0; i < n; i++) {
        g[i] = valid ? g[i] + c * expf(v[i] - l) : NAN;
        if (j + i == t) g[i] -= c;
      }
    });
  }
}

template <typename T>
static void cross_entropy_rows(int64_t rows, int64_t V, T *logits, const int32_t *targets,
                               int ignore_index, float *lse, double *row_loss,
                               const int64_t *count) {
  if (rows == 0) return;
  rows_kernel<T><<<row_blocks(rows), row_threads<T>(V), 0, hy_cuda_stream()>>>(
      rows, V, logits, targets, ignore_index, lse, row_loss, count);
  HY_CUDA_LAUNCHED(rows_kernel);
}

extern "C" void cuda_cross_entropy_rows_f32(int64_t rows, int64_t V, float *logits,
                                            const int32_t *targets, int ignore_index, float *lse,
                                            double *row_loss, const int64_t *count) {
  cross_entropy_rows(rows, V, logits, targets, ignore_index, lse, row_loss, count);
}

extern "C" void cuda_cross_entropy_rows_bf16(int64_t rows, int64_t V, hy_bf16 *logits,
                                             const int32_t *targets, int ignore_index, float *lse,
                                             double *row_loss, const int64_t *count) {
  cross_entropy_rows(rows, V, reinterpret_cast<bf16 *>(logits), targets, ignore_index, lse,
                     row_loss, count);
}

/* ---- the mean: one block adds the row losses in double, in an order fixed by its size ---- */

__global__ void total_kernel(int64_t rows, const double *row_loss, const int64_t *count,
                             float *loss) {
  double total = 0.0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) total += row_loss[r];
  total = hy_block_sum(total);
  if (threadIdx.x == 0) {
    int64_t n = *count;
    *loss = n ? (float)(total / (double)n) : 0.0f;
  }
}

extern "C" void cuda_cross_entropy_total_f32(int64_t rows, const double *row_loss,
                                             const int64_t *count, float *loss) {
  total_kernel<<<1, MAX_ROW_THREADS, 0, hy_cuda_stream()>>>(rows, row_loss, count, loss);
  HY_CUDA_LAUNCHED(total_kernel);
}

/* ---- backward: glogits (+)= gloss / count (softmax - onehot), the scale read on the device ----
 * Ignored rows are left alone, or zeroed when the gradient is fresh; the target's element gets
 * both terms in the CPU's order. */
template <typename T>
__global__ void __launch_bounds__(MAX_ROW_THREADS)
    backward_kernel(int64_t rows, int64_t V, const T *logits, const int32_t *targets,
                    int ignore_index, const float *lse, const int64_t *count, const float *gloss,
                    bool accumulate, T *glogits, bool vec) {
  int64_t n_valid = *count;
  float c = n_valid ? (float)((double)*gloss / (double)n_valid) : 0.0f;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    T *g = glogits + r * V;
    int64_t t = targets[r];
    if (t == ignore_index) {
      if (!accumulate) zero_row(g, V, vec);
      continue;
    }
    bool valid = t >= 0 && t < V;
    float l = lse[r];
    rewrite_row(logits + r * V, g, V, vec, accumulate,
                [&](int64_t j, const float *x, float *gv, int n) {
                  for (int i = 0; i < n; i++) {
                    gv[i] = valid ? gv[i] + c * expf(x[i] - l) : NAN;
                    if (j + i == t) gv[i] -= c;
                  }
                });
  }
}

template <typename T>
static void cross_entropy_backward(int64_t rows, int64_t V, const T *logits, const int32_t *targets,
                                   int ignore_index, const float *lse, const int64_t *count,
                                   const float *gloss, bool accumulate, T *glogits) {
  if (rows == 0 || V == 0) return;
  bool vec = ((uintptr_t)logits - (uintptr_t)glogits) % 16 == 0;
  backward_kernel<T><<<row_blocks(rows), row_threads<T>(V), 0, hy_cuda_stream()>>>(
      rows, V, logits, targets, ignore_index, lse, count, gloss, accumulate, glogits, vec);
  HY_CUDA_LAUNCHED(backward_kernel);
}

extern "C" void cuda_cross_entropy_backward_f32(int64_t rows, int64_t V, const float *logits,
                                                const int32_t *targets, int ignore_index,
                                                const float *lse, const int64_t *count,
                                                const float *gloss, bool accumulate,
                                                float *glogits) {
  cross_entropy_backward(rows, V, logits, targets, ignore_index, lse, count, gloss, accumulate,
                         glogits);
}

extern "C" void cuda_cross_entropy_backward_bf16(int64_t rows, int64_t V, const hy_bf16 *logits,
                                                 const int32_t *targets, int ignore_index,
                                                 const float *lse, const int64_t *count,
                                                 const float *gloss, bool accumulate,
                                                 hy_bf16 *glogits) {
  cross_entropy_backward(rows, V, reinterpret_cast<const bf16 *>(logits), targets, ignore_index,
                         lse, count, gloss, accumulate, reinterpret_cast<bf16 *>(glogits));
}

/* ---- dst (+)= gloss * src: the fused op's gradients scaled by the loss's gradient ----
 * Four elements a thread where both are aligned for it, then the rest one by one. */
template <typename T>
__global__ void scale_kernel(int64_t n4, int64_t n, const float *src, const float *gloss,
                             bool accumulate, T *dst) {
  float g = *gloss;
  HY_GRID_STRIDE(i, n4) {
    float4 v = ld4(src + 4 * i);
    v.x *= g, v.y *= g, v.z *= g, v.w *= g;
    if (accumulate) {
      float4 d = ld4(dst + 4 * i);
      v.x += d.x, v.y += d.y, v.z += d.z, v.w += d.w;
    }
    st4(dst + 4 * i, v);
  }
  HY_GRID_STRIDE(i, n - 4 * n4) {
    int64_t k = 4 * n4 + i;
    float v = g * src[k];
    st(dst + k, accumulate ? ld(dst + k) + v : v);
  }
}

template <typename T>
static void cross_entropy_scale(int64_t n, const float *src, const float *gloss, bool accumulate,
                                T *dst) {
  if (n == 0) return;
  int64_t n4 = hy_aligned4<float>(src) && hy_aligned4<T>(dst) ? n / 4 : 0;
  scale_kernel<T><<<hy_cuda_blocks(n4 ? n4 : n), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(
      n4, n, src, gloss, accumulate, dst);
  HY_CUDA_LAUNCHED(scale_kernel);
}

extern "C" void cuda_cross_entropy_scale_f32(int64_t n, const float *src, const float *gloss,
                                             bool accumulate, float *dst) {
  cross_entropy_scale(n, src, gloss, accumulate, dst);
}

extern "C" void cuda_cross_entropy_scale_bf16(int64_t n, const float *src, const float *gloss,
                                              bool accumulate, hy_bf16 *dst) {
  cross_entropy_scale(n, src, gloss, accumulate, reinterpret_cast<bf16 *>(dst));
}
