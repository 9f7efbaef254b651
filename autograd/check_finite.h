/* A debugging aid for a loss that turns NaN: with HYLA_CHECK_FINITE=1 in the environment, every
 * op's output (as the op records itself on the tape) and every gradient a backward node writes are
 * read back and checked, and the first NaN or infinity ends hyla naming the op, the tensor and the
 * element, and whether the op's inputs were finite (so the op that made it is the one named).
 * Each check copies the tensor to the host and waits for the GPU: a step runs many times slower,
 * and a CUDA-graph capture cannot hold it (train.cuda_graph = false). */
#ifndef HYLA_CHECK_FINITE_H
#define HYLA_CHECK_FINITE_H

#include "tensor/tensor.h"

#include <stdbool.h>

bool hy_check_finite_enabled(void); /* HYLA_CHECK_FINITE set and not "0" (read once) */
void hy_check_finite_enable(bool on);
/* The check of op's result `what` (its output, or the gradient of input i) against its inputs. */
void hy_check_finite(const char *op, const char *what, const hy_tensor *t, int n_in,
                     hy_tensor *const *in);

#endif
