#include "tensor/cpu/real.h"

/* dst (+)= src over any strides; both of this file's dtype and of one shape. */
void K(cpu_copy)(hy_tensor *dst, const hy_tensor *src, bool accumulate) {
  hy_copy_dims dims = hy_copy_dims_of(dst, src);
  const int64_t *shape = dims.shape, *sd = dims.sd, *ss = dims.ss;
  real *d = dst->data;
  const real *s = src->data;
  int64_t outer = shape[0] * shape[1] * shape[2];
#pragma omp parallel for if (outer * shape[3] > PAR_MIN) schedule(static)
  for (int64_t o = 0; o < outer; o++) {
    int64_t i0 = o / (shape[1] * shape[2]), i1 = o / shape[2] % shape[1], i2 = o % shape[2];
    real *dr = d + i0 * sd[0] + i1 * sd[1] + i2 * sd[2];
    const real *sr = s + i0 * ss[0] + i1 * ss[1] + i2 * ss[2];
    if (accumulate)
      for (int64_t j = 0; j < shape[3]; j++) dr[j * sd[3]] += sr[j * ss[3]];
    else
      for (int64_t j = 0; j < shape[3]; j++) dr[j * sd[3]] = sr[j * ss[3]];
  }
}
