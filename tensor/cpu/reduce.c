#include "tensor/cpu/real.h"

/* x viewed as [outer, n, inner] reduced over n into y [outer, inner]. The inner loop runs over
 * `inner`, which keeps it vectorized and the summation order fixed. */
void K(cpu_reduce)(hy_reduce_op op, int64_t outer, int64_t n, int64_t inner, const real *x, real *y,
                   int32_t *argmax) {
#pragma omp parallel for if (outer * n * inner > PAR_MIN) schedule(static)
  for (int64_t o = 0; o < outer; o++) {
    const real *xo = x + o * n * inner;
    real *yo = y + o * inner;
    int32_t *ao = argmax ? argmax + o * inner : NULL;
    for (int64_t i = 0; i < inner; i++) yo[i] = op == HY_REDUCE_MAX ? xo[i] : 0;
    if (ao)
      for (int64_t i = 0; i < inner; i++) ao[i] = 0;
    if (op == HY_REDUCE_MAX) {
      for (int64_t j = 1; j < n; j++)
        for (int64_t i = 0; i < inner; i++)
          if (xo[j * inner + i] > yo[i]) {
            yo[i] = xo[j * inner + i];
            if (ao) ao[i] = (int32_t)j;
          }
    } else {
      for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < inner; i++) yo[i] += xo[j * inner + i];
      if (op == HY_REDUCE_MEAN)
        for (int64_t i = 0; i < inner; i++) yo[i] /= (real)n;
    }
  }
}

void K(cpu_reduce_backward)(hy_reduce_op op, int64_t outer, int64_t n, int64_t inner,
                            const int32_t *argmax, const real *gy, real *gx) {
  real w = op == HY_REDUCE_MEAN ? 1 / (real)n : 1;
#pragma omp parallel for if (outer * n * inner > PAR_MIN) schedule(static)
  for (int64_t o = 0; o < outer; o++) {
    const real *go = gy + o * inner;
    real *gxo = gx + o * n * inner;
    if (op == HY_REDUCE_MAX) {
      for (int64_t i = 0; i < inner; i++) gxo[argmax[o * inner + i] * inner + i] += go[i];
    } else {
      for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < inner; i++) gxo[j * inner + i] += w * go[i];
    }
  }
}
