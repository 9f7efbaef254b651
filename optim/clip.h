/* Gradient clipping by global norm. */
#ifndef HYLA_CLIP_H
#define HYLA_CLIP_H

#include "tensor/params.h"

/* The L2 norm of all gradients together (in double, in parameter order). */
double hy_grad_norm(const hy_params *ps);
/* Scale all gradients so their global norm is at most max_norm; returns the norm before. */
double hy_clip_grad_norm(hy_params *ps, double max_norm);

#endif
