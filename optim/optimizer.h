/* Optimizers over a model's parameters: AdamW (moments with bias correction, decoupled weight
 * decay) and SGD with momentum (L2 weight decay added to the gradient, as in PyTorch). Weight decay
 * applies only to the parameters marked `decay` (tensor/params.h). The state tensors are
 * persistent, of each parameter's dtype, and named for checkpoints. */
#ifndef HYLA_OPTIMIZER_H
#define HYLA_OPTIMIZER_H

#include "tensor/params.h"

typedef enum { HY_ADAMW, HY_SGD } hy_optimizer_kind;

typedef struct {
  hy_optimizer_kind kind;
  double beta1, beta2, eps; /* AdamW */
  double momentum;          /* SGD */
  double weight_decay;
} hy_optimizer_config;

enum { HY_OPT_MAX_STATE = 2 };

typedef struct {
  hy_optimizer_config cfg;
  hy_params *params;
  int n_state;                               /* state tensors per parameter: 2 AdamW, 1 SGD */
  const char *state_names[HY_OPT_MAX_STATE]; /* "m", "v" or "momentum" */
  hy_tensor **state[HY_OPT_MAX_STATE];       /* state[k][i]: tensor k of parameter i */
  int64_t step;                              /* updates done so far */
} hy_optimizer;

hy_optimizer_config hy_adamw_config(double beta1, double beta2, double eps, double weight_decay);
hy_optimizer_config hy_sgd_config(double momentum, double weight_decay);

void hy_optimizer_init(hy_optimizer *o, hy_params *ps, hy_optimizer_config cfg);
/* One update at learning rate lr from the parameters' gradients; a parameter without a gradient
 * is left alone. Does not zero the gradients.
 * On the GPU: one launch over every parameter, after a pending clip (optim/clip.h), with nothing
 * read back. It can be captured into a CUDA graph (once a step has run outside the capture); the
 * capture counts no step, and each replay needs hy_optimizer_prepare first. */
void hy_optimizer_step(hy_optimizer *o, double lr);
/* GPU only: count the next step and write its learning rate and bias corrections where the
 * update's host-to-device copy reads them (waiting, if need be, until the last step's copy has
 * run). hy_optimizer_step does this itself outside a capture. */
void hy_optimizer_prepare(hy_optimizer *o, double lr);
void hy_optimizer_free(hy_optimizer *o);

#endif
