/* AdamW (Loshchilov & Hutter): Adam moments with bias correction and decoupled weight decay,
 * applied only to the parameters marked `decay`. Moments are persistent f32/f64 tensors beside
 * the parameters, of their dtype. */
#ifndef HYLA_ADAMW_H
#define HYLA_ADAMW_H

#include "tensor/params.h"

typedef struct {
  double beta1, beta2, eps, weight_decay;
} hy_adamw_config;

typedef struct {
  hy_adamw_config cfg;
  hy_params *params;
  hy_tensor **m, **v; /* one of each per parameter */
  int64_t step;
} hy_adamw;

hy_adamw_config hy_adamw_config_default(void); /* 0.9, 0.95, 1e-8, 0.1 */
void hy_adamw_init(hy_adamw *o, hy_params *ps, hy_adamw_config cfg);
/* One update at learning rate lr from the parameters' gradients (a parameter without a gradient
 * is left alone). Does not zero the gradients. */
void hy_adamw_step(hy_adamw *o, double lr);
void hy_adamw_free(hy_adamw *o);

#endif
