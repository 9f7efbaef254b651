/* A model's parameters: persistent tensors under their module path
 * ("blocks/3/mixer/q_proj/weight"), in creation order. The optimizer walks them; checkpoints save
 * them by name. */
#ifndef HYLA_PARAMS_H
#define HYLA_PARAMS_H

#include "tensor/tensor.h"

enum { HY_PARAM_NAME_MAX = 96 };

typedef struct {
  char name[HY_PARAM_NAME_MAX];
  hy_tensor *t;
  bool decay; /* takes weight decay (matrices do; norms, biases and gains do not) */
} hy_param;

struct hy_fused; /* tensor/cuda/kernels.h */

typedef struct {
  hy_param *items;
  int n, cap;
  /* Gradient clipping's state (optim/clip.h): the last global norm, a scalar f64 tensor on the
   * parameters' device; on the GPU, whether its clip factor still waits for the next optimizer
   * step, and the device table of the parameters that the clip and the optimizer walk. */
  hy_tensor *grad_norm;
  bool clip_pending;
  struct hy_fused *fused;
} hy_params;

/* A new zeroed persistent tensor that requires a gradient, registered as prefix/name. */
hy_tensor *hy_params_add(hy_params *ps, const char *prefix, const char *name, hy_dtype dtype,
                         hy_shape shape, bool decay);
hy_param *hy_params_find(hy_params *ps, const char *name);
int64_t hy_params_count(const hy_params *ps); /* total elements */
/* Zero every gradient (a clip factor still waiting on the GPU goes with them). */
void hy_params_zero_grad(hy_params *ps);
/* Move every parameter's memory to `device`, in place (the tensors stay the same, so the layers'
 * pointers to them stay valid; gradients are dropped): a model built on the CPU trains on the GPU.
 */
void hy_params_to(hy_params *ps, hy_device device);
void hy_params_free(hy_params *ps);

#endif
