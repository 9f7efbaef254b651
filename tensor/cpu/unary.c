#include "tensor/cpu/real.h"

#include "tensor/cpu/sigmoid.h"

#include <string.h>

/* log(1 + e^x) and log sigmoid(x) without overflow for large |x|. */
static inline real softplus(real x) { return (x > 0 ? x : 0) + log1p(real_exp(-fabs(x))); }

static inline real logsigmoid(real x) { return (x < 0 ? x : 0) - log1p(real_exp(-fabs(x))); }

/* One loop per op, so that each is a plain vectorizable map. */
// clang-format off
#define MAP(expr)                                                      \
  do {                                                                 \
    _Pragma("omp parallel for if (n > PAR_MIN) schedule(static)")      \
    for (int64_t i = 0; i < n; i++) {                                  \
      real v = x[i];                                                   \
      y[i] = (expr);                                                   \
    }                                                                  \
  } while (0)
// clang-format on

void K(cpu_unary)(hy_unary_op op, double p, int64_t n, const real *x, real *y) {
  real c = (real)p;
  switch (op) {
  case HY_SCALE: MAP(c * v); break;
  case HY_ADD_SCALAR: MAP(v + c); break;
  case HY_EXP: MAP(real_exp(v)); break;
  case HY_LOG: MAP(log(v)); break;
  case HY_SIGMOID: MAP(sigmoid(v)); break;
  case HY_LOGSIGMOID: MAP(logsigmoid(v)); break;
  case HY_SOFTPLUS: MAP(softplus(v)); break;
  case HY_SILU: MAP(v * sigmoid(v)); break;
  case HY_TANH: MAP(tanh(v)); break;
  case HY_RELU: MAP(v > 0 ? v : 0); break;
  case HY_SQRT: MAP(sqrt(v)); break;
  case HY_RSQRT: MAP(1 / sqrt(v)); break;
  case HY_POW: MAP(pow(v, c)); break;
  case HY_ELU: MAP(v > 0 ? v : real_exp(v) - 1); break;
  }
}

/* gx += gy * f'(x), written with the saved output y where that is cheaper. */
// clang-format off
#define GRAD(expr)                                                     \
  do {                                                                 \
    _Pragma("omp parallel for if (n > PAR_MIN) schedule(static)")      \
    for (int64_t i = 0; i < n; i++) {                                  \
      real v = x[i], out = y[i];                                       \
      (void)v;                                                         \
      (void)out;                                                       \
      gx[i] += gy[i] * (expr);                                         \
    }                                                                  \
  } while (0)
// clang-format on

void K(cpu_unary_backward)(hy_unary_op op, double p, int64_t n, const real *x, const real *y,
                           const real *gy, real *gx, bool accumulate) {
  real c = (real)p;
  if (!accumulate) memset(gx, 0, (size_t)n * sizeof *gx); /* a fresh gradient */
  switch (op) {
  case HY_SCALE: GRAD(c); break;
  case HY_ADD_SCALAR: GRAD(1); break;
  case HY_EXP: GRAD(out); break;
  case HY_LOG: GRAD(1 / v); break;
  case HY_SIGMOID: GRAD(out * (1 - out)); break;
  case HY_LOGSIGMOID: GRAD(sigmoid(-v)); break;
  case HY_SOFTPLUS: GRAD(sigmoid(v)); break;
  case HY_SILU: GRAD(sigmoid(v) * (1 + v * (1 - sigmoid(v)))); break;
  case HY_TANH: GRAD(1 - out * out); break;
  case HY_RELU: GRAD(v > 0 ? 1 : 0); break;
  case HY_SQRT: GRAD((real)0.5 / out); break;
  case HY_RSQRT: GRAD((real)-0.5 * out * out * out); break;
  case HY_POW: GRAD(c * pow(v, c - 1)); break;
  case HY_ELU: GRAD(v > 0 ? 1 : out + 1); break;
  }
}
