#include "tensor/cpu/real.h"

#include "tensor/cpu/sigmoid.h"

/* SwiGLU over rows: y = silu(g) * u with silu(v) = v sigmoid(v); g and u rows of `cols` elements
 * at row strides sg and su, y packed. The same arithmetic as hy_silu followed by hy_mul. */
void K(cpu_swiglu)(int64_t rows, int64_t cols, const real *g, int64_t sg, const real *u, int64_t su,
                   real *y) {
#pragma omp parallel for if (rows * cols > PAR_MIN) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const real *gr = g + r * sg, *ur = u + r * su;
    real *yr = y + r * cols;
    for (int64_t j = 0; j < cols; j++) {
      real v = gr[j], s = v * sigmoid(v);
      yr[j] = s * ur[j];
    }
  }
}

/* gg (+)= gy u silu'(g) and gu (+)= gy silu(g), both packed (acc_*: add, else overwrite; either
 * may be NULL), with silu'(v) = sigmoid(v) (1 + v (1 - sigmoid(v))) as cpu_unary_backward. */
void K(cpu_swiglu_backward)(int64_t rows, int64_t cols, const real *g, int64_t sg, const real *u,
                            int64_t su, const real *gy, real *gg, bool acc_g, real *gu,
                            bool acc_u) {
#pragma omp parallel for if (rows * cols > PAR_MIN) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const real *gr = g + r * sg, *ur = u + r * su, *gyr = gy + r * cols;
    for (int64_t j = 0; j < cols; j++) {
      int64_t i = r * cols + j;
      real v = gr[j], sv = sigmoid(v);
      if (gg) {
        real t = gyr[j] * ur[j] * (sv * (1 + v * (1 - sv)));
        gg[i] = acc_g ? gg[i] + t : t;
      }
      if (gu) { /* after gg: they are one buffer when u is g */
        real t = gyr[j] * (v * sv);
        gu[i] = acc_u ? gu[i] + t : t;
      }
    }
  }
}
