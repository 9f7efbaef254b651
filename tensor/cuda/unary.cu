#include "tensor/cuda/common.cuh"

/* Elementwise maps and their gradients, as cpu_unary: the same formulas and the same handling of
 * large |x| (sigmoid, softplus and logsigmoid through e^-|x|, which cannot overflow). One kernel
 * per op (a template), one thread per element. */

namespace {

__device__ __forceinline__ float sigmoid(float x) {
  float e = expf(-fabsf(x));
  return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

__device__ __forceinline__ float softplus(float x) {
  return (x > 0 ? x : 0.0f) + log1pf(expf(-fabsf(x)));
}

__device__ __forceinline__ float logsigmoid(float x) {
  return (x < 0 ? x : 0.0f) - log1pf(expf(-fabsf(x)));
}

template <hy_unary_op OP> __device__ __forceinline__ float value(float v, float c) {
  switch (OP) {
  case HY_SCALE: return c * v;
  case HY_ADD_SCALAR: return v + c;
  case HY_EXP: return expf(v);
  case HY_LOG: return logf(v);
  case HY_SIGMOID: return sigmoid(v);
  case HY_LOGSIGMOID: return logsigmoid(v);
  case HY_SOFTPLUS: return softplus(v);
  case HY_SILU: return v * sigmoid(v);
  case HY_TANH: return tanhf(v);
  case HY_RELU: return v > 0 ? v : 0.0f;
  case HY_SQRT: return sqrtf(v);
  case HY_RSQRT: return 1 / sqrtf(v);
  case HY_POW: return powf(v, c);
  case HY_ELU: return v > 0 ? v : expf(v) - 1;
  }
  return 0;
}

/* f'(x), written with the saved output `out` where that is cheaper (as on the CPU). */
template <hy_unary_op OP> __device__ __forceinline__ float slope(float v, float out, float c) {
  switch (OP) {
  case HY_SCALE: return c;
  case HY_ADD_SCALAR: return 1;
  case HY_EXP: return out;
  case HY_LOG: return 1 / v;
  case HY_SIGMOID: return out * (1 - out);
  case HY_LOGSIGMOID: return sigmoid(-v);
  case HY_SOFTPLUS: return sigmoid(v);
  case HY_SILU: {
    float s = sigmoid(v);
    return s * (1 + v * (1 - s));
  }
  case HY_TANH: return 1 - out * out;
  case HY_RELU: return v > 0 ? 1.0f : 0.0f;
  case HY_SQRT: return 0.5f / out;
  case HY_RSQRT: return -0.5f * out * out * out;
  case HY_POW: return c * powf(v, c - 1);
  case HY_ELU: return v > 0 ? 1 : out + 1;
  }
  return 0;
}

template <hy_unary_op OP>
__global__ void unary_kernel(int64_t n, float c, const float *__restrict__ x,
                             float *__restrict__ y) {
  HY_GRID_STRIDE(i, n) y[i] = value<OP>(x[i], c);
}

template <hy_unary_op OP>
__global__ void unary_grad_kernel(int64_t n, float c, const float *__restrict__ x,
                                  const float *__restrict__ y, const float *__restrict__ gy,
                                  float *__restrict__ gx) {
  HY_GRID_STRIDE(i, n) gx[i] += gy[i] * slope<OP>(x[i], y[i], c);
}

template <hy_unary_op OP> static void forward(int64_t n, float c, const float *x, float *y) {
  unary_kernel<OP><<<hy_cuda_blocks(n), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(n, c, x, y);
  HY_CUDA_LAUNCHED(unary_kernel);
}

template <hy_unary_op OP>
static void backward(int64_t n, float c, const float *x, const float *y, const float *gy,
                     float *gx) {
  unary_grad_kernel<OP>
      <<<hy_cuda_blocks(n), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(n, c, x, y, gy, gx);
  HY_CUDA_LAUNCHED(unary_grad_kernel);
}

/* Calls F<op>(args...) for the op known at run time. */
#define UNARY_DISPATCH(op, F, ...)                                                                 \
  switch (op) {                                                                                    \
  case HY_SCALE: F<HY_SCALE>(__VA_ARGS__); return;                                                 \
  case HY_ADD_SCALAR: F<HY_ADD_SCALAR>(__VA_ARGS__); return;                                       \
  case HY_EXP: F<HY_EXP>(__VA_ARGS__); return;                                                     \
  case HY_LOG: F<HY_LOG>(__VA_ARGS__); return;                                                     \
  case HY_SIGMOID: F<HY_SIGMOID>(__VA_ARGS__); return;                                             \
  case HY_LOGSIGMOID: F<HY_LOGSIGMOID>(__VA_ARGS__); return;                                       \
  case HY_SOFTPLUS: F<HY_SOFTPLUS>(__VA_ARGS__); return;                                           \
  case HY_SILU: F<HY_SILU>(__VA_ARGS__); return;                                                   \
  case HY_TANH: F<HY_TANH>(__VA_ARGS__); return;                                                   \
  case HY_RELU: F<HY_RELU>(__VA_ARGS__); return;                                                   \
  case HY_SQRT: F<HY_SQRT>(__VA_ARGS__); return;                                                   \
  case HY_RSQRT: F<HY_RSQRT>(__VA_ARGS__); return;                                                 \
  case HY_POW: F<HY_POW>(__VA_ARGS__); return;                                                     \
  case HY_ELU: F<HY_ELU>(__VA_ARGS__); return;                                                     \
  }

} // namespace

extern "C" void cuda_unary_f32(hy_unary_op op, double p, int64_t n, const float *x, float *y) {
  if (n == 0) return;
  UNARY_DISPATCH(op, forward, n, (float)p, x, y);
  hy_die("unary", "unknown op %d", (int)op);
}

extern "C" void cuda_unary_backward_f32(hy_unary_op op, double p, int64_t n, const float *x,
                                        const float *y, const float *gy, float *gx) {
  if (n == 0) return;
  UNARY_DISPATCH(op, backward, n, (float)p, x, y, gy, gx);
  hy_die("unary_backward", "unknown op %d", (int)op);
}
