/* Plain causal linear attention (mixer kind "linear"; Katharopoulos et al. 2020, as
 * flash-linear-attention's LinearAttention): the no-decay baseline.
 *   q = phi(x W_q) / sqrt(d_h), k = phi(x W_k), v = x W_v in H heads, phi a feature map
 *   S_t = S_{t-1} + k_t^T v_t,  o_t = q_t S_t
 *   y = RMSNorm_per_head(o) W_o
 * phi: "identity", "elu" (elu(x) + 1, positive features) or "relu". */
#ifndef HYLA_LINEAR_ATTENTION_H
#define HYLA_LINEAR_ATTENTION_H

#include "layers/linear.h"
#include "layers/mixer.h"

typedef enum { HY_PHI_IDENTITY, HY_PHI_ELU, HY_PHI_RELU } hy_feature_map;

typedef struct {
  hy_linear q, k, v, o;
  hy_tensor *norm_weight; /* [d_h] */
  int64_t heads, head_dim, chunk;
  hy_feature_map phi;
  double norm_eps;
  bool recurrent;
} hy_linear_attn_layer;

extern const hy_mixer_kind hy_mixer_linear;

/* "identity", "elu", "relu" -> the map; -1 for anything else. */
int hy_feature_map_of(const char *name);
hy_tensor *hy_linear_attn_layer_forward(const hy_linear_attn_layer *l, hy_tensor *x);

#endif
