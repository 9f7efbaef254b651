#include "optim/clip.h"
#include "optim/fused.h"
#include "tensor/arena.h"
#include "tensor/device.h"

#include <math.h>

static double sum_squares(const hy_tensor *g) {
  double s = 0;
  int64_t n = hy_numel(g);
  if (g->dtype == HY_F64) {
    const double *x = g->data;
    for (int64_t i = 0; i < n; i++) s += x[i] * x[i];
  } else {
    const float *x = g->data;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
  }
  return s;
}

static void scale(hy_tensor *g, double c) {
  int64_t n = hy_numel(g);
  if (g->dtype == HY_F64) {
    double *x = g->data;
    for (int64_t i = 0; i < n; i++) x[i] *= c;
  } else {
    float *x = g->data;
    for (int64_t i = 0; i < n; i++) x[i] *= (float)c;
  }
}

double hy_grad_norm(hy_params *ps) {
#ifdef HYLA_CUDA
  if (hy_fused_on_gpu(ps)) {
    hy_arena_mark mark = hy_arena_get_mark();
    double norm, *dev = hy_arena_alloc_on(HY_CUDA, sizeof *dev);
    cuda_fused_norm(hy_fused_of(ps), ps->n, hy_fused_view(ps, NULL, 0, 0), dev, false, 0);
    hy_device_copy(HY_CPU, &norm, HY_CUDA, dev, sizeof norm);
    hy_arena_rewind(mark);
    return norm;
  }
#endif
  double s = 0;
  for (int i = 0; i < ps->n; i++)
    if (ps->items[i].t->grad) s += sum_squares(ps->items[i].t->grad);
  return sqrt(s);
}

hy_tensor *hy_clip_grad_norm(hy_params *ps, double max_norm) {
  if (!ps->grad_norm)
    ps->grad_norm =
        hy_zeros_persistent_on(ps->n ? ps->items[0].t->device : HY_CPU, HY_F64, HY_SHAPE(1));
#ifdef HYLA_CUDA
  if (hy_fused_on_gpu(ps)) {
    hy_arena_mark mark = hy_arena_get_mark();
    cuda_fused_norm(hy_fused_of(ps), ps->n, hy_fused_view(ps, NULL, 0, 0), ps->grad_norm->data,
                    true, max_norm);
    hy_arena_rewind(mark);
    ps->clip_pending = true;
    return ps->grad_norm;
  }
#endif
  double norm = hy_grad_norm(ps);
  if (max_norm > 0 && norm > max_norm) {
    double c = max_norm / (norm + 1e-6);
    for (int i = 0; i < ps->n; i++)
      if (ps->items[i].t->grad) scale(ps->items[i].t->grad, c);
  }
  *(double *)ps->grad_norm->data = norm;
  return ps->grad_norm;
}

int64_t hy_clip_nonfinite(hy_params *ps) {
#ifdef HYLA_CUDA
  if (ps->fused) return cuda_fused_nonfinite(ps->fused);
#endif
  (void)ps;
  return 0;
}
