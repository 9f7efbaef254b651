/* Sparse-linear attention (mixer kind "sla"; Zhang et al. 2025, "SLA: Beyond Sparsity in Diffusion
 * Transformers via Fine-Tunable Sparse-Linear Attention", thu-ml/SLA), causal: the softmax layer's
 * projections and RoPE (layers/attention.h), then hy_sla, which gives per head o_s (exact softmax
 * attention over the critical key blocks) and o_l (linear attention over the marginal ones), and
 *   o = o_s + proj_l(o_l),   out = concat_heads(o) W_o,
 * proj_l a d_h x d_h linear map with a bias, shared by the heads and zero at init (as SLA's
 * SparseLinearAttention.proj_l), so the layer starts as block-sparse softmax attention. The naive
 * form (layers/sla_reference.h) is used when the config says so. Decoding recomputes the prefix
 * (layers/prefix_decode.h).
 * Under sequence parallelism each rank holds whole blocks and runs hy_sla_offset on its own
 * queries against every rank's keys and values (LASP-2H's one AllGather, dist/lasp2.h), with the
 * previous rank's last block of queries, whose mean ranks the key blocks of the rank's first
 * block (a second, small AllGather). The linear branch's states of the earlier blocks come from
 * the gathered keys and values: each query block sums its own subset of them, which no single
 * state per rank (LASP-2) could give. docs/distributed.md has the bytes. */
#ifndef HYLA_SLA_H
#define HYLA_SLA_H

#include "layers/attention.h"

typedef struct {
  hy_attention_layer attn; /* q, k, v, o projections and RoPE */
  hy_linear proj_l;        /* [d_h, d_h] + bias, on o_l */
  int64_t block;
  double critical, negligible;
  int feature_map; /* a hy_sla_feature_map */
  bool naive;
} hy_sla_layer;

extern const hy_mixer_kind hy_mixer_sla;

/* The hy_sla_feature_map of a recipe's name ("softmax", "elu", "relu"), or -1. */
int hy_sla_feature_map_of(const char *name);

hy_tensor *hy_sla_layer_forward(const hy_sla_layer *l, hy_tensor *x);

#endif
