/* The plain step-by-step recurrence of gated linear attention, built from ordinary ops so the tape
 * differentiates it: the reference that the chunked op (hy_gla) is checked against.
 *   S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t,   o_t = q_t S_t,   S_0 = 0
 * Shapes as hy_gla; g may be NULL (no decay). O(T) ops: for tests and small inputs. */
#ifndef HYLA_GLA_REFERENCE_H
#define HYLA_GLA_REFERENCE_H

#include "tensor/tensor.h"

hy_tensor *hy_gla_recurrent(hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *g);

#endif
