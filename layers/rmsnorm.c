#include "layers/rmsnorm.h"
#include "tensor/ops.h"

void hy_rmsnorm_init(hy_rmsnorm_layer *n, hy_params *ps, const char *prefix, int64_t d, double eps,
                     hy_dtype dtype) {
  n->weight = hy_params_add(ps, prefix, "weight", dtype, HY_SHAPE(d), false);
  hy_fill(n->weight, 1.0);
  n->eps = eps;
}

hy_tensor *hy_rmsnorm_forward(const hy_rmsnorm_layer *n, hy_tensor *x) {
  return hy_rmsnorm(x, n->weight, n->eps);
}

hy_tensor *hy_add_rmsnorm_forward(const hy_rmsnorm_layer *n, hy_tensor *x, hy_tensor *y,
                                  hy_dtype dtype, hy_tensor **sum) {
  return hy_add_rmsnorm(x, y, n->weight, n->eps, dtype, sum);
}
