/* Decoding for mixers without a recurrent state (sigmoid, softplus, SLA): keep the mixer's inputs
 * so far and run the mixer's own forward over them for each new token, returning the last row.
 * O(T) work per token instead of a cache's O(1) lookups, but exactly the forward's function. */
#ifndef HYLA_PREFIX_DECODE_H
#define HYLA_PREFIX_DECODE_H

#include "tensor/tensor.h"

typedef hy_tensor *(*hy_forward_fn)(void *self, hy_tensor *x);

void *hy_prefix_decode_new(void *self, int64_t batch, int64_t max_len, int64_t d, hy_dtype dtype);
hy_tensor *hy_prefix_decode_step(void *self, void *state, hy_tensor *x, int64_t pos,
                                 hy_forward_fn forward);
void hy_prefix_decode_free(void *state);

#endif
