/* RMSNorm with a learned gain: x / sqrt(mean(x^2) + eps) * g, g initialized to 1. */
#ifndef HYLA_RMSNORM_H
#define HYLA_RMSNORM_H

#include "tensor/params.h"

typedef struct {
  hy_tensor *weight; /* [d] */
  double eps;
} hy_rmsnorm_layer;

void hy_rmsnorm_init(hy_rmsnorm_layer *n, hy_params *ps, const char *prefix, int64_t d, double eps,
                     hy_dtype dtype);
hy_tensor *hy_rmsnorm_forward(const hy_rmsnorm_layer *n, hy_tensor *x);
/* The norm of *sum = x + y (y NULL: of x) in `dtype`, in one pass (hy_add_rmsnorm): a pre-norm
 * block's residual add and the next norm. */
hy_tensor *hy_add_rmsnorm_forward(const hy_rmsnorm_layer *n, hy_tensor *x, hy_tensor *y,
                                  hy_dtype dtype, hy_tensor **sum);

#endif
