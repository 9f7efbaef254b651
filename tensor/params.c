#include "tensor/params.h"
#include "tensor/device.h"

#ifdef HYLA_CUDA
#include "tensor/cuda/kernels.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hy_tensor *hy_params_add(hy_params *ps, const char *prefix, const char *name, hy_dtype dtype,
                         hy_shape shape, bool decay) {
  if (ps->n == ps->cap) {
    ps->cap = ps->cap ? 2 * ps->cap : 32;
    hy_param *items = realloc(ps->items, (size_t)ps->cap * sizeof *items);
    if (!items) hy_die("params", "out of memory");
    ps->items = items;
  }
  hy_param *p = &ps->items[ps->n];
  int len = snprintf(p->name, sizeof p->name, "%s%s%s", prefix, *prefix ? "/" : "", name);
  if (len >= (int)sizeof p->name) hy_die("params", "name %s/%s is too long", prefix, name);
  if (hy_params_find(ps, p->name)) hy_die("params", "two parameters named %s", p->name);
  p->t = hy_zeros_persistent(dtype, shape);
  p->t->requires_grad = true;
  p->decay = decay;
  ps->n++;
  return p->t;
}

hy_param *hy_params_find(hy_params *ps, const char *name) {
  for (int i = 0; i < ps->n; i++)
    if (!strcmp(ps->items[i].name, name)) return &ps->items[i];
  return NULL;
}

int64_t hy_params_count(const hy_params *ps) {
  int64_t n = 0;
  for (int i = 0; i < ps->n; i++) n += hy_numel(ps->items[i].t);
  return n;
}

void hy_params_zero_grad(hy_params *ps) {
  for (int i = 0; i < ps->n; i++) {
    hy_tensor *g = ps->items[i].t->grad;
    if (g) hy_device_memset0(g->device, g->data, (size_t)hy_numel(g) * hy_dtype_size(g->dtype));
  }
  ps->clip_pending = false;
}

void hy_params_to(hy_params *ps, hy_device device) {
  for (int i = 0; i < ps->n; i++) {
    hy_tensor *t = ps->items[i].t;
    if (t->device == device) continue;
    size_t bytes = (size_t)hy_numel(t) * hy_dtype_size(t->dtype);
    void *data = hy_device_malloc(device, bytes);
    hy_device_copy(device, data, t->device, t->data, bytes);
    hy_device_free(t->device, t->data);
    if (t->grad) hy_free(t->grad);
    if (t->bf16_copy) hy_free(t->bf16_copy);
    t->grad = t->bf16_copy = NULL;
    t->data = data;
    t->device = device;
  }
  hy_free(ps->grad_norm); /* made again on the new device */
  ps->grad_norm = NULL;
  ps->clip_pending = false;
  hy_weights_changed();
}

void hy_params_free(hy_params *ps) {
  for (int i = 0; i < ps->n; i++) hy_free(ps->items[i].t);
  free(ps->items);
  hy_free(ps->grad_norm);
#ifdef HYLA_CUDA
  cuda_fused_free(ps->fused);
#endif
  *ps = (hy_params){0};
}
