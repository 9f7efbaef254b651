#include "layers/linear.h"
#include "tensor/ops.h"

void hy_linear_init(hy_linear *l, hy_params *ps, const char *prefix, int64_t in, int64_t out,
                    bool bias, hy_dtype dtype, hy_rng *rng, double std) {
  l->weight = hy_params_add(ps, prefix, "weight", dtype, HY_SHAPE(out, in), true);
  hy_fill_normal(l->weight, rng, 0.0, std);
  l->bias = bias ? hy_params_add(ps, prefix, "bias", dtype, HY_SHAPE(out), false) : NULL;
}

hy_tensor *hy_linear_forward(const hy_linear *l, hy_tensor *x) {
  return hy_dense(x, l->weight, l->bias);
}
