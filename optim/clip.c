#include "optim/clip.h"

#include <math.h>

#ifdef HYLA_CUDA
#include "tensor/cuda/kernels.h"
#endif

static double sum_squares(const hy_tensor *g) {
  double s = 0;
  int64_t n = hy_numel(g);
#ifdef HYLA_CUDA
  if (g->device == HY_CUDA) return cuda_sum_squares_f32(n, g->data);
#endif
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
#ifdef HYLA_CUDA
  if (g->device == HY_CUDA) {
    cuda_scale_inplace_f32(n, g->data, c);
    return;
  }
#endif
  if (g->dtype == HY_F64) {
    double *x = g->data;
    for (int64_t i = 0; i < n; i++) x[i] *= c;
  } else {
    float *x = g->data;
    for (int64_t i = 0; i < n; i++) x[i] *= (float)c;
  }
}

double hy_grad_norm(const hy_params *ps) {
  double s = 0;
  for (int i = 0; i < ps->n; i++)
    if (ps->items[i].t->grad) s += sum_squares(ps->items[i].t->grad);
  return sqrt(s);
}

double hy_clip_grad_norm(hy_params *ps, double max_norm) {
  double norm = hy_grad_norm(ps);
  if (max_norm > 0 && norm > max_norm) {
    double c = max_norm / (norm + 1e-6);
    for (int i = 0; i < ps->n; i++)
      if (ps->items[i].t->grad) scale(ps->items[i].t->grad, c);
  }
  return norm;
}
