/* The parameters as the GPU's one-launch clip and optimizer see them (tensor/cuda/optim.cu): a
 * parameter set on the GPU keeps its device table in ps->fused, made on first use. */
#ifndef HYLA_OPTIM_FUSED_H
#define HYLA_OPTIM_FUSED_H

#include "tensor/params.h"

#ifdef HYLA_CUDA
#include "tensor/cuda/kernels.h"

/* Whether the parameters live on the GPU; then all of them must, in f32. */
bool hy_fused_on_gpu(const hy_params *ps);
hy_fused *hy_fused_of(hy_params *ps);
/* Each parameter's pointers, size and weight decay, in the step arena; state: the optimizer's
 * n_state tensors per parameter (NULL for the gradients alone). */
hy_fused_param *hy_fused_view(const hy_params *ps, hy_tensor **const *state, int n_state,
                              double weight_decay);
#endif

#endif
