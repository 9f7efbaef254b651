#include "optim/adamw.h"

#include <tgmath.h>
#include <stdlib.h>

hy_adamw_config hy_adamw_config_default(void) { return (hy_adamw_config){0.9, 0.95, 1e-8, 0.1}; }

void hy_adamw_init(hy_adamw *o, hy_params *ps, hy_adamw_config cfg) {
  o->cfg = cfg;
  o->params = ps;
  o->step = 0;
  o->m = calloc((size_t)ps->n, sizeof *o->m);
  o->v = calloc((size_t)ps->n, sizeof *o->v);
  if (!o->m || !o->v) hy_die("adamw", "out of memory");
  for (int i = 0; i < ps->n; i++) {
    hy_tensor *p = ps->items[i].t;
    o->m[i] = hy_zeros_persistent(p->dtype, hy_shape_of(p));
    o->v[i] = hy_zeros_persistent(p->dtype, hy_shape_of(p));
  }
}

/* The same update for both float types; moments and arithmetic in the parameter's precision,
 * the step-size factors in double. */
// clang-format off
#define ADAMW_UPDATE(real)                                                       \
  do {                                                                           \
    real *w = p->data, *m = o->m[i]->data, *v = o->v[i]->data;                   \
    const real *g = p->grad->data;                                               \
    _Pragma("omp parallel for if (n > 65536) schedule(static)")                  \
    for (int64_t j = 0; j < n; j++) {                                            \
      m[j] = (real)b1 * m[j] + (real)(1 - b1) * g[j];                            \
      v[j] = (real)b2 * v[j] + (real)(1 - b2) * g[j] * g[j];                     \
      real mhat = m[j] * (real)c1, vhat = v[j] * (real)c2;                       \
      w[j] -= (real)lr * (mhat / (sqrt(vhat) + (real)eps) + (real)wd * w[j]);    \
    }                                                                            \
  } while (0)
// clang-format on

void hy_adamw_step(hy_adamw *o, double lr) {
  o->step++;
  double b1 = o->cfg.beta1, b2 = o->cfg.beta2, eps = o->cfg.eps;
  double c1 = 1.0 / (1.0 - pow(b1, (double)o->step)), c2 = 1.0 / (1.0 - pow(b2, (double)o->step));
  for (int i = 0; i < o->params->n; i++) {
    hy_tensor *p = o->params->items[i].t;
    if (!p->grad) continue;
    double wd = o->params->items[i].decay ? o->cfg.weight_decay : 0.0;
    int64_t n = hy_numel(p);
    if (p->dtype == HY_F64)
      ADAMW_UPDATE(double);
    else
      ADAMW_UPDATE(float);
  }
}

void hy_adamw_free(hy_adamw *o) {
  for (int i = 0; o->m && i < o->params->n; i++) {
    hy_free(o->m[i]);
    hy_free(o->v[i]);
  }
  free(o->m);
  free(o->v);
  o->m = o->v = NULL;
}
