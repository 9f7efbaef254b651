/* Lightning attention (mixer kind "lightning"; TransNormerLLM / Lightning Attention-2, as in
 * flash-linear-attention's lightning_attn and TransNormerLLM's NormLinearAttention):
 *   q = silu(x W_q), k = silu(x W_k), v = x W_v, u = x W_u, in H heads (all d wide)
 *   o_t = sum_{s <= t} lambda_h^(t - s) (q_t . k_s) v_s, log lambda_h = -(8 / H)(1 - l / L) h
 *   y = (u * SRMSNorm(o)) W_o        (SRMSNorm: RMSNorm over all of d, without a gain)
 * Head 0 does not decay; the deepest layers decay least. It is GLA with a constant,
 * data-independent gate, so it runs on the same chunked op. */
#ifndef HYLA_LIGHTNING_H
#define HYLA_LIGHTNING_H

#include "layers/linear.h"
#include "layers/mixer.h"

typedef struct {
  hy_linear q, k, v, u, o;
  int64_t heads, head_dim, chunk;
  double *log_decay; /* [heads] */
  double norm_eps;
  bool recurrent;
} hy_lightning_layer;

extern const hy_mixer_kind hy_mixer_lightning;

hy_tensor *hy_lightning_layer_forward(const hy_lightning_layer *l, hy_tensor *x);

#endif
