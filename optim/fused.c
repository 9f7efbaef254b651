#include "optim/fused.h"

#ifdef HYLA_CUDA
#include "tensor/arena.h"
#include "tensor/device.h"

static void check_gpu_f32(const hy_param *p, const hy_tensor *t, const char *what) {
  if (t->device != HY_CUDA || t->dtype != HY_F32)
    hy_die("optimizer", "%s of %s is %s on the %s: the GPU optimizer takes f32 GPU tensors only",
           what, p->name, hy_describe(t), hy_device_name(t->device));
}

bool hy_fused_on_gpu(const hy_params *ps) {
  if (ps->n == 0 || ps->items[0].t->device != HY_CUDA) return false;
  for (int i = 0; i < ps->n; i++) {
    check_gpu_f32(&ps->items[i], ps->items[i].t, "parameter");
    if (ps->items[i].t->grad) check_gpu_f32(&ps->items[i], ps->items[i].t->grad, "the gradient");
  }
  return true;
}

hy_fused *hy_fused_of(hy_params *ps) {
  if (!ps->fused) ps->fused = cuda_fused_new();
  return ps->fused;
}

hy_fused_param *hy_fused_view(const hy_params *ps, hy_tensor **const *state, int n_state,
                              double weight_decay) {
  hy_fused_param *view = hy_arena_alloc(sizeof *view * (size_t)(ps->n ? ps->n : 1));
  for (int i = 0; i < ps->n; i++) {
    const hy_param *p = &ps->items[i];
    for (int k = 0; k < n_state; k++) check_gpu_f32(p, state[k][i], "the optimizer's state");
    view[i] = (hy_fused_param){.w = p->t->data,
                               .g = p->t->grad ? p->t->grad->data : NULL,
                               .m = n_state > 0 ? state[0][i]->data : NULL,
                               .v = n_state > 1 ? state[1][i]->data : NULL,
                               .n = hy_numel(p->t),
                               .wd = p->decay ? (float)weight_decay : 0.0f};
  }
  return view;
}
#endif
