/* ||a - ref|| / ||ref|| over every element (infinite when a holds a NaN): the distance every
 * comparison of a result with its reference uses, header-only so that the plain MPI test programs
 * (no Criterion, tests/dist/mpi_check.h) share it with tests/support.c. */
#ifndef HYLA_REL_NORM_ERR_H
#define HYLA_REL_NORM_ERR_H

#include "tensor/tensor.h"

#include <math.h>

static inline double t_rel_norm_err_of(const hy_tensor *a, const hy_tensor *ref) {
  double num = 0, den = 1e-300;
  for (int64_t i = 0; i < hy_numel(ref); i++) {
    double d = hy_get(a, i) - hy_get(ref, i);
    num += d * d;
    den += hy_get(ref, i) * hy_get(ref, i);
  }
  return isnan(num) ? INFINITY : sqrt(num / den);
}

#endif
