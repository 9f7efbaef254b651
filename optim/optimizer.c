#include "optim/optimizer.h"
#include "optim/fused.h"
#include "tensor/arena.h"

#include <stdlib.h>
#include <tgmath.h>

#ifdef HYLA_CUDA
#include "tensor/cuda/runtime.h"
#endif

hy_optimizer_config hy_adamw_config(double beta1, double beta2, double eps, double weight_decay) {
  return (hy_optimizer_config){HY_ADAMW, beta1, beta2, eps, 0.0, weight_decay};
}

hy_optimizer_config hy_sgd_config(double momentum, double weight_decay) {
  return (hy_optimizer_config){HY_SGD, 0.0, 0.0, 0.0, momentum, weight_decay};
}

void hy_optimizer_init(hy_optimizer *o, hy_params *ps, hy_optimizer_config cfg) {
  *o = (hy_optimizer){.cfg = cfg, .params = ps};
  if (cfg.kind == HY_ADAMW) {
    o->n_state = 2;
    o->state_names[0] = "m";
    o->state_names[1] = "v";
  } else {
    o->n_state = 1;
    o->state_names[0] = "momentum";
  }
  for (int k = 0; k < o->n_state; k++) {
    o->state[k] = calloc((size_t)(ps->n ? ps->n : 1), sizeof *o->state[k]);
    if (!o->state[k]) hy_die("optimizer", "out of memory");
    for (int i = 0; i < ps->n; i++) {
      hy_tensor *p = ps->items[i].t;
      o->state[k][i] = hy_zeros_persistent_on(p->device, p->dtype, hy_shape_of(p));
    }
  }
}

/* The same updates for both float types: state and arithmetic in the parameter's precision,
 * step-size factors computed in double. */
// clang-format off
#define ADAMW_UPDATE(real)                                                       \
  do {                                                                           \
    real *w = p->data, *m = o->state[0][i]->data, *v = o->state[1][i]->data;     \
    const real *g = p->grad->data;                                               \
    _Pragma("omp parallel for if (n > 65536) schedule(static)")                  \
    for (int64_t j = 0; j < n; j++) {                                            \
      m[j] = (real)b1 * m[j] + (real)(1 - b1) * g[j];                            \
      v[j] = (real)b2 * v[j] + (real)(1 - b2) * g[j] * g[j];                     \
      real mhat = m[j] * (real)c1, vhat = v[j] * (real)c2;                       \
      w[j] -= (real)lr * (mhat / (sqrt(vhat) + (real)eps) + (real)wd * w[j]);    \
    }                                                                            \
  } while (0)

#define SGD_UPDATE(real)                                                         \
  do {                                                                           \
    real *w = p->data, *b = o->state[0][i]->data;                                \
    const real *g = p->grad->data;                                               \
    _Pragma("omp parallel for if (n > 65536) schedule(static)")                  \
    for (int64_t j = 0; j < n; j++) {                                            \
      real gj = g[j] + (real)wd * w[j];                                          \
      b[j] = first ? gj : (real)mu * b[j] + gj;                                  \
      w[j] -= (real)lr * b[j];                                                   \
    }                                                                            \
  } while (0)
// clang-format on

/* AdamW's bias corrections 1 / (1 - beta^t) at the current step (0 for SGD). */
static double correction(const hy_optimizer *o, double beta) {
  return o->cfg.kind == HY_ADAMW ? 1.0 / (1.0 - pow(beta, (double)o->step)) : 0.0;
}

#ifdef HYLA_CUDA
void hy_optimizer_prepare(hy_optimizer *o, double lr) {
  if (!hy_fused_on_gpu(o->params))
    hy_die("optimizer", "hy_optimizer_prepare is for parameters on the GPU");
  o->step++;
  hy_weights_changed();
  hy_fused_step s = {(float)lr, (float)correction(o, o->cfg.beta1),
                     (float)correction(o, o->cfg.beta2), o->step == 1};
  cuda_fused_set_step(hy_fused_of(o->params), s);
}

/* Every parameter in one launch (tensor/cuda/optim.cu), with a pending clip factor. */
static void step_on_gpu(hy_optimizer *o, double lr) {
  if (hy_cuda_capturing())
    hy_weights_changed(); /* replays are prepared by hy_optimizer_prepare */
  else
    hy_optimizer_prepare(o, lr);
  const hy_optimizer_config *c = &o->cfg;
  hy_fused_hyper h = {c->kind == HY_ADAMW, (float)c->beta1,       (float)(1 - c->beta1),
                      (float)c->beta2,     (float)(1 - c->beta2), (float)c->eps,
                      (float)c->momentum};
  hy_params *ps = o->params;
  hy_arena_mark mark = hy_arena_get_mark();
  cuda_fused_update(hy_fused_of(ps), ps->n,
                    hy_fused_view(ps, o->state, o->n_state, c->weight_decay), h, ps->clip_pending);
  hy_arena_rewind(mark);
  ps->clip_pending = false;
}
#else
void hy_optimizer_prepare(hy_optimizer *o, double lr) {
  (void)o;
  (void)lr;
  hy_die("optimizer", "hy_optimizer_prepare is for parameters on the GPU");
}
#endif

void hy_optimizer_step(hy_optimizer *o, double lr) {
#ifdef HYLA_CUDA
  if (hy_fused_on_gpu(o->params)) {
    step_on_gpu(o, lr);
    return;
  }
#endif
  o->step++;
  hy_weights_changed();
  const hy_optimizer_config *c = &o->cfg;
  double b1 = c->beta1, b2 = c->beta2, eps = c->eps, mu = c->momentum;
  double c1 = correction(o, b1), c2 = correction(o, b2);
  bool first = o->step == 1; /* PyTorch's SGD starts the momentum buffer at the first gradient */
  for (int i = 0; i < o->params->n; i++) {
    hy_tensor *p = o->params->items[i].t;
    if (!p->grad) continue;
    double wd = o->params->items[i].decay ? c->weight_decay : 0.0;
    int64_t n = hy_numel(p);
    bool f64 = p->dtype == HY_F64;
    if (c->kind == HY_ADAMW) {
      if (f64)
        ADAMW_UPDATE(double);
      else
        ADAMW_UPDATE(float);
    } else {
      if (f64)
        SGD_UPDATE(double);
      else
        SGD_UPDATE(float);
    }
  }
}

void hy_optimizer_free(hy_optimizer *o) {
  for (int k = 0; k < o->n_state; k++) {
    for (int i = 0; o->state[k] && i < o->params->n; i++) hy_free(o->state[k][i]);
    free(o->state[k]);
    o->state[k] = NULL;
  }
}
