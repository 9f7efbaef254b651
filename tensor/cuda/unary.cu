#include "tensor/cuda/elementwise.cuh"
#include "tensor/cuda/sigmoid.cuh"

/* Elementwise maps and their gradients, as cpu_unary: the same formulas and the same handling of
 * large |x| (sigmoid, softplus and logsigmoid through e^-|x|, which cannot overflow). One map per
 * op (a template over the op and the storage type, tensor/cuda/elementwise.cuh): four elements a
 * thread where the buffers are aligned for it. The backward reads only what the op's slope needs
 * (x, the saved output, or neither) besides gy. */

namespace {

__device__ __forceinline__ float sigmoid(float x) { return hy_sigmoidf(x); }

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

/* bf16 storage: the slopes of sigmoid and tanh from x, the output recomputed in f32, rather than
 * from the stored output, whose 1 - y (1 - y^2) loses every digit near saturation. */
template <hy_unary_op OP, typename T> constexpr bool recompute_y() {
  return sizeof(T) == 2 && (OP == HY_SIGMOID || OP == HY_TANH);
}

/* Which of x and the saved output y the slope reads: the other is not loaded. */
template <hy_unary_op OP, typename T> constexpr bool slope_reads_x() {
  return OP == HY_LOG || OP == HY_LOGSIGMOID || OP == HY_SOFTPLUS || OP == HY_SILU ||
         OP == HY_RELU || OP == HY_POW || OP == HY_ELU || recompute_y<OP, T>();
}

template <hy_unary_op OP, typename T> constexpr bool slope_reads_y() {
  return (OP == HY_EXP || OP == HY_SIGMOID || OP == HY_TANH || OP == HY_SQRT || OP == HY_RSQRT ||
          OP == HY_ELU) &&
         !recompute_y<OP, T>();
}

/* y = f(x) */
template <hy_unary_op OP> struct forward_map {
  float c;
  __device__ void operator()(const float *x, float *y) const { y[0] = value<OP>(x[0], c); }
};

/* gx (+)= gy f'(x), from x, y, gy (y recomputed from x where RECOMPUTE) */
template <hy_unary_op OP, bool RECOMPUTE> struct backward_map {
  float c;
  __device__ void operator()(const float *in, float *gx) const {
    float y = RECOMPUTE ? value<OP>(in[0], c) : in[1];
    gx[0] = in[2] * slope<OP>(in[0], y, c);
  }
};

template <hy_unary_op OP, typename T> static void forward(int64_t n, float c, const T *x, T *y) {
  map_launch(n, map_io<T, 1, 1>{{x}, {y}, {false}}, forward_map<OP>{c});
}

template <hy_unary_op OP, typename T>
static void backward(int64_t n, float c, const T *x, const T *y, const T *gy, T *gx,
                     bool accumulate) {
  map_io<T, 3, 1> io = {{slope_reads_x<OP, T>() ? x : NULL, slope_reads_y<OP, T>() ? y : NULL, gy},
                        {gx},
                        {accumulate}};
  map_launch(n, io, backward_map<OP, recompute_y<OP, T>()>{c});
}

/* Calls F<op, T>(args...) for the op known at run time. */
#define UNARY_DISPATCH(op, F, T, ...)                                                              \
  switch (op) {                                                                                    \
  case HY_SCALE: F<HY_SCALE, T>(__VA_ARGS__); return;                                              \
  case HY_ADD_SCALAR: F<HY_ADD_SCALAR, T>(__VA_ARGS__); return;                                    \
  case HY_EXP: F<HY_EXP, T>(__VA_ARGS__); return;                                                  \
  case HY_LOG: F<HY_LOG, T>(__VA_ARGS__); return;                                                  \
  case HY_SIGMOID: F<HY_SIGMOID, T>(__VA_ARGS__); return;                                          \
  case HY_LOGSIGMOID: F<HY_LOGSIGMOID, T>(__VA_ARGS__); return;                                    \
  case HY_SOFTPLUS: F<HY_SOFTPLUS, T>(__VA_ARGS__); return;                                        \
  case HY_SILU: F<HY_SILU, T>(__VA_ARGS__); return;                                                \
  case HY_TANH: F<HY_TANH, T>(__VA_ARGS__); return;                                                \
  case HY_RELU: F<HY_RELU, T>(__VA_ARGS__); return;                                                \
  case HY_SQRT: F<HY_SQRT, T>(__VA_ARGS__); return;                                                \
  case HY_RSQRT: F<HY_RSQRT, T>(__VA_ARGS__); return;                                              \
  case HY_POW: F<HY_POW, T>(__VA_ARGS__); return;                                                  \
  case HY_ELU: F<HY_ELU, T>(__VA_ARGS__); return;                                                  \
  }

template <typename T> static void unary(hy_unary_op op, double p, int64_t n, const T *x, T *y) {
  if (n == 0) return;
  UNARY_DISPATCH(op, forward, T, n, (float)p, x, y);
  hy_die("unary", "unknown op %d", (int)op);
}

template <typename T>
static void unary_backward(hy_unary_op op, double p, int64_t n, const T *x, const T *y, const T *gy,
                           T *gx, bool accumulate) {
  if (n == 0) return;
  UNARY_DISPATCH(op, backward, T, n, (float)p, x, y, gy, gx, accumulate);
  hy_die("unary_backward", "unknown op %d", (int)op);
}

} // namespace

extern "C" void cuda_unary_f32(hy_unary_op op, double p, int64_t n, const float *x, float *y) {
  unary(op, p, n, x, y);
}

extern "C" void cuda_unary_bf16(hy_unary_op op, double p, int64_t n, const hy_bf16 *x, hy_bf16 *y) {
  unary(op, p, n, (const bf16 *)x, (bf16 *)y);
}

extern "C" void cuda_unary_backward_f32(hy_unary_op op, double p, int64_t n, const float *x,
                                        const float *y, const float *gy, float *gx,
                                        bool accumulate) {
  unary_backward(op, p, n, x, y, gy, gx, accumulate);
}

extern "C" void cuda_unary_backward_bf16(hy_unary_op op, double p, int64_t n, const hy_bf16 *x,
                                         const hy_bf16 *y, const hy_bf16 *gy, hy_bf16 *gx,
                                         bool accumulate) {
  unary_backward(op, p, n, (const bf16 *)x, (const bf16 *)y, (const bf16 *)gy, (bf16 *)gx,
                 accumulate);
}
