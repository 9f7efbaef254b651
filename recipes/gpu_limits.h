/* The checks of a recipe that trains on the GPU (train.device = "cuda"): its precision, and the
 * sizes the CUDA kernels take (tensor/cuda/limits.h: head sizes, tiles of positions along a grid,
 * heads with a constant decay, 32-bit positions), each stated in the kernels' own terms, so that
 * an accepted recipe never stops in a kernel's assertion. Validation (recipes/recipe.c) runs them
 * after its own checks across keys; a CPU build checks them too, so a recipe is judged the same
 * on the machine that writes it as on the one that trains it. */
#ifndef HYLA_RECIPE_GPU_LIMITS_H
#define HYLA_RECIPE_GPU_LIMITS_H

#include "recipes/check.h"

extern const hy_cross_check hy_gpu_checks[];
extern const size_t hy_n_gpu_checks;

#endif
