/* The SwiGLU MLP: y = W_down (silu(W_gate x) * (W_up x)). */
#ifndef HYLA_SWIGLU_H
#define HYLA_SWIGLU_H

#include "layers/linear.h"

typedef struct {
  hy_linear gate, up, down;
} hy_swiglu_layer;

/* gate and up normal(0, std); down normal(0, out_std) (the residual-branch scaling). */
void hy_swiglu_init(hy_swiglu_layer *m, hy_params *ps, const char *prefix, int64_t d,
                    int64_t hidden, hy_dtype dtype, hy_rng *rng, double std, double out_std);
hy_tensor *hy_swiglu_forward(const hy_swiglu_layer *m, hy_tensor *x);

/* About 8d/3, rounded up to a multiple of 64: the default hidden width. */
int64_t hy_swiglu_default_hidden(int64_t d);

#endif
