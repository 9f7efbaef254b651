/* Gradient clipping by global norm. */
#ifndef HYLA_CLIP_H
#define HYLA_CLIP_H

#include "tensor/params.h"

/* The L2 norm of all gradients together as they are in memory (in double; on the CPU in
 * parameter order, on the GPU in a fixed order of its own). On the GPU it waits for the result. */
double hy_grad_norm(hy_params *ps);
/* The global norm of the gradients, and clipping to max_norm (max_norm <= 0: none): each gradient
 * scaled by max_norm / (norm + 1e-6) where the norm is above max_norm. Returns the norm before, as
 * a one-element f64 tensor on the parameters' device, owned by ps and overwritten by the next
 * call: read it (hy_item) only when it is logged.
 * On the CPU the gradients are scaled in place. On the GPU nothing is read back and the gradients
 * stay as they are: the factor waits on the device, and the next hy_optimizer_step scales each
 * gradient by it as it reads it (hy_params_zero_grad drops it); a non-finite norm makes that step
 * leave the parameters and the optimizer's state alone. */
hy_tensor *hy_clip_grad_norm(hy_params *ps, double max_norm);
/* How many clips on the GPU found a non-finite norm (so that their steps changed nothing): reads
 * the GPU. Always 0 on the CPU, where the caller sees the norm itself. */
int64_t hy_clip_nonfinite(hy_params *ps);

#endif
