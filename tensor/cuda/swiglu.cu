#include "tensor/cuda/common.cuh"
#include "tensor/cuda/sigmoid.cuh"
#include "tensor/cuda/vec8.cuh"

#include <initializer_list>

/* SwiGLU's product y = silu(g) * u over rows of `cols`, as cpu_swiglu: g and u at row strides sg
 * and su (the halves of one projection are read in place), y and the gradients packed. One
 * template over the storage type T (f32 or bf16: values compute in f32 and round once on store)
 * and the step N: 8 elements (16-byte accesses) where every row start is 16-byte aligned, else 1.
 * Thread (x, y) of a block takes the step of columns blockIdx.x * blockDim.x + x of the rows
 * blockIdx.y * blockDim.y + y (grid-stride): a warp reads consecutive columns, and no thread
 * divides to find its row. */

template <int N, typename T>
__global__ void swiglu_kernel(int64_t rows, int64_t cols, const T *g, int64_t sg, const T *u,
                              int64_t su, T *y) {
  int64_t j = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * N;
  if (j >= cols) return;
  for (int64_t r = (int64_t)blockIdx.y * blockDim.y + threadIdx.y; r < rows;
       r += (int64_t)gridDim.y * blockDim.y) {
    float gv[N], uv[N];
    ldn(g + r * sg + j, gv);
    ldn(u + r * su + j, uv);
    for (int e = 0; e < N; e++) {
      float v = gv[e];
      gv[e] = v * hy_sigmoidf(v) * uv[e];
    }
    stn(y + r * cols + j, gv);
  }
}

/* gg (+)= gy u silu'(g), then gu (+)= gy silu(g) (they may be one buffer), with silu'(v) =
 * sigmoid(v) (1 + v (1 - sigmoid(v))) as cuda_unary_backward. */
template <int N, typename T>
__global__ void swiglu_backward_kernel(int64_t rows, int64_t cols, const T *g, int64_t sg,
                                       const T *u, int64_t su, const T *gy, T *gg, bool acc_g,
                                       T *gu, bool acc_u) {
  int64_t j = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * N;
  if (j >= cols) return;
  for (int64_t r = (int64_t)blockIdx.y * blockDim.y + threadIdx.y; r < rows;
       r += (int64_t)gridDim.y * blockDim.y) {
    float gv[N], uv[N], dy[N], t[N];
    ldn(g + r * sg + j, gv);
    ldn(u + r * su + j, uv);
    ldn(gy + r * cols + j, dy);
    if (gg) {
      for (int e = 0; e < N; e++) {
        float v = gv[e], s = hy_sigmoidf(v);
        t[e] = dy[e] * uv[e] * (s * (1 + v * (1 - s)));
      }
      stn_acc(gg + r * cols + j, acc_g, t);
    }
    if (gu) {
      for (int e = 0; e < N; e++) t[e] = dy[e] * (gv[e] * hy_sigmoidf(gv[e]));
      stn_acc(gu + r * cols + j, acc_u, t);
    }
  }
}

/* Whether every row of these pointers can take 16-byte steps. */
static bool vec_rows(int64_t cols, int64_t sg, int64_t su, std::initializer_list<const void *> ps) {
  bool ok = cols % 8 == 0 && sg % 8 == 0 && su % 8 == 0;
  for (const void *p : ps) ok = ok && hy_aligned16(p);
  return ok;
}

/* Steps across the block's x (a warp or more), rows fill its y. */
static void launch_shape(int64_t rows, int64_t cols, int n, dim3 *grid, dim3 *block) {
  int64_t steps = (cols + n - 1) / n, tx = (steps + 31) / 32 * 32;
  if (tx > HY_CUDA_THREADS) tx = HY_CUDA_THREADS;
  int64_t ty = HY_CUDA_THREADS / tx, gx = (steps + tx - 1) / tx, gy = (rows + ty - 1) / ty;
  *grid = dim3((unsigned)gx, (unsigned)(gy < 65535 ? gy : 65535));
  *block = dim3((unsigned)tx, (unsigned)ty);
}

template <typename T>
static void forward(int64_t rows, int64_t cols, const T *g, int64_t sg, const T *u, int64_t su,
                    T *y) {
  if (rows == 0 || cols == 0) return;
  bool vec = vec_rows(cols, sg, su, {g, u, y});
  dim3 grid, block;
  launch_shape(rows, cols, vec ? 8 : 1, &grid, &block);
  if (vec)
    swiglu_kernel<8><<<grid, block, 0, hy_cuda_stream()>>>(rows, cols, g, sg, u, su, y);
  else
    swiglu_kernel<1><<<grid, block, 0, hy_cuda_stream()>>>(rows, cols, g, sg, u, su, y);
  HY_CUDA_LAUNCHED(swiglu_kernel);
}

template <typename T>
static void backward(int64_t rows, int64_t cols, const T *g, int64_t sg, const T *u, int64_t su,
                     const T *gy, T *gg, bool acc_g, T *gu, bool acc_u) {
  if (rows == 0 || cols == 0 || (!gg && !gu)) return;
  bool vec = vec_rows(cols, sg, su, {g, u, gy, gg, gu});
  dim3 grid, block;
  launch_shape(rows, cols, vec ? 8 : 1, &grid, &block);
  if (vec)
    swiglu_backward_kernel<8>
        <<<grid, block, 0, hy_cuda_stream()>>>(rows, cols, g, sg, u, su, gy, gg, acc_g, gu, acc_u);
  else
    swiglu_backward_kernel<1>
        <<<grid, block, 0, hy_cuda_stream()>>>(rows, cols, g, sg, u, su, gy, gg, acc_g, gu, acc_u);
  HY_CUDA_LAUNCHED(swiglu_backward_kernel);
}

static const bf16 *b16(const hy_bf16 *p) { return reinterpret_cast<const bf16 *>(p); }
static bf16 *b16(hy_bf16 *p) { return reinterpret_cast<bf16 *>(p); }

extern "C" void cuda_swiglu_f32(int64_t rows, int64_t cols, const float *g, int64_t sg,
                                const float *u, int64_t su, float *y) {
  forward(rows, cols, g, sg, u, su, y);
}

extern "C" void cuda_swiglu_bf16(int64_t rows, int64_t cols, const hy_bf16 *g, int64_t sg,
                                 const hy_bf16 *u, int64_t su, hy_bf16 *y) {
  forward(rows, cols, b16(g), sg, b16(u), su, b16(y));
}

extern "C" void cuda_swiglu_backward_f32(int64_t rows, int64_t cols, const float *g, int64_t sg,
                                         const float *u, int64_t su, const float *gy, float *gg,
                                         bool acc_g, float *gu, bool acc_u) {
  backward(rows, cols, g, sg, u, su, gy, gg, acc_g, gu, acc_u);
}

extern "C" void cuda_swiglu_backward_bf16(int64_t rows, int64_t cols, const hy_bf16 *g, int64_t sg,
                                          const hy_bf16 *u, int64_t su, const hy_bf16 *gy,
                                          hy_bf16 *gg, bool acc_g, hy_bf16 *gu, bool acc_u) {
  backward(rows, cols, b16(g), sg, b16(u), su, b16(gy), b16(gg), acc_g, b16(gu), acc_u);
}
