/* Softplus attention (mixer kind "softplus"; "Softplus Attention with Re-weighting Boosts Length
 * Extrapolation", LSSA / LSSAR): the softmax layer's projections and RoPE (layers/attention.h),
 * then weights w_ts = softplus(c_t q_t . k_s / sqrt(d_h))^p for s <= t, normalized per row, with
 * c_t = log(t + 1) / log(train_len) when length scaling is on (1 otherwise), and the output
 * projection. p is the config's `power`; `hyla eval` builds the model with eval_power in its place
 * (run/evaluate.h). The fused op is hy_softplus_attention; the naive form
 * (layers/softmax_variants_reference.h) is used when the config says so. Decoding recomputes the
 * prefix (layers/prefix_decode.h). */
#ifndef HYLA_SOFTPLUS_ATTENTION_H
#define HYLA_SOFTPLUS_ATTENTION_H

#include "layers/attention.h"

typedef struct {
  hy_attention_layer attn; /* q, k, v, o projections and RoPE */
  int64_t train_len;       /* c_t is relative to it; 0: no length scaling (c_t = 1) */
  double power;            /* p */
  bool naive;
} hy_softplus_attention_layer;

extern const hy_mixer_kind hy_mixer_softplus;

hy_tensor *hy_softplus_attention_layer_forward(const hy_softplus_attention_layer *l, hy_tensor *x);

#endif
