/* Linear: y = x W^T (+ b), W [out, in] as in PyTorch. */
#ifndef HYLA_LINEAR_H
#define HYLA_LINEAR_H

#include "tensor/params.h"
#include "tensor/rng.h"

typedef struct {
  hy_tensor *weight, *bias; /* bias NULL when the layer has none */
} hy_linear;

/* W normal(0, std), b zero; registered as prefix/weight and prefix/bias. */
void hy_linear_init(hy_linear *l, hy_params *ps, const char *prefix, int64_t in, int64_t out,
                    bool bias, hy_dtype dtype, hy_rng *rng, double std);
hy_tensor *hy_linear_forward(const hy_linear *l, hy_tensor *x); /* [..., in] -> [..., out] */

#endif
