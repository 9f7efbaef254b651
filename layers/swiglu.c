#include "layers/swiglu.h"
#include "tensor/ops.h"

#include <stdio.h>

void hy_swiglu_init(hy_swiglu_layer *m, hy_params *ps, const char *prefix, int64_t d,
                    int64_t hidden, hy_dtype dtype, hy_rng *rng, double std, double out_std) {
  char path[HY_PARAM_NAME_MAX];
  snprintf(path, sizeof path, "%s/gate_proj", prefix);
  hy_linear_init(&m->gate, ps, path, d, hidden, false, dtype, rng, std);
  snprintf(path, sizeof path, "%s/up_proj", prefix);
  hy_linear_init(&m->up, ps, path, d, hidden, false, dtype, rng, std);
  snprintf(path, sizeof path, "%s/down_proj", prefix);
  hy_linear_init(&m->down, ps, path, hidden, d, false, dtype, rng, out_std);
}

hy_tensor *hy_swiglu_forward(const hy_swiglu_layer *m, hy_tensor *x) {
  hy_tensor *g = hy_linear_forward(&m->gate, x), *u = hy_linear_forward(&m->up, x);
  return hy_linear_forward(&m->down, hy_swiglu(g, u));
}

int64_t hy_swiglu_default_hidden(int64_t d) {
  int64_t h = (8 * d + 2) / 3;
  return (h + 63) / 64 * 64;
}
