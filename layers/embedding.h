/* Embedding: token ids [...] -> rows of a [V, d] table, [..., d]. */
#ifndef HYLA_EMBEDDING_H
#define HYLA_EMBEDDING_H

#include "tensor/params.h"
#include "tensor/rng.h"

typedef struct {
  hy_tensor *weight; /* [V, d], normal(0, std) */
} hy_embedding_layer;

void hy_embedding_init(hy_embedding_layer *e, hy_params *ps, const char *prefix, int64_t vocab,
                       int64_t d, hy_dtype dtype, hy_rng *rng, double std);
hy_tensor *hy_embedding_forward(const hy_embedding_layer *e, hy_tensor *tokens);

#endif
