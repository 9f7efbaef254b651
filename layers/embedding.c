#include "layers/embedding.h"
#include "tensor/ops.h"

void hy_embedding_init(hy_embedding_layer *e, hy_params *ps, const char *prefix, int64_t vocab,
                       int64_t d, hy_dtype dtype, hy_rng *rng, double std) {
  /* Embedding rows take no weight decay, as in most LM recipes; the recipe can change that. */
  e->weight = hy_params_add(ps, prefix, "weight", dtype, HY_SHAPE(vocab, d), false);
  hy_fill_normal(e->weight, rng, 0.0, std);
}

hy_tensor *hy_embedding_forward(const hy_embedding_layer *e, hy_tensor *tokens) {
  return hy_embedding(e->weight, tokens);
}
