/* Multi-head causal softmax attention with RoPE (mixer kind "attn"):
 * q, k, v = x W_q, x W_k, x W_v in H heads; RoPE on q and k; o = softmax(q k^T / sqrt(d_h)) v
 * under the causal mask; out = o W_o. The fused op hy_attention does the softmax part; the naive
 * O(T^2)-memory form built from plain ops is kept beside it as the reference. */
#ifndef HYLA_ATTENTION_H
#define HYLA_ATTENTION_H

#include "layers/linear.h"
#include "layers/mixer.h"

typedef struct {
  hy_linear q, k, v, o;
  int64_t n_heads, head_dim;
  double rope_theta;
  bool naive;     /* use hy_attention_naive (tests and benchmarks) */
  int64_t window; /* sliding window: each query sees the last `window` keys; 0: all */
} hy_attention_layer;

extern const hy_mixer_kind hy_mixer_attn;

/* Shared by the softmax-family layers (sigmoid, softplus, sla): the four projections, q and k in
 * heads with RoPE from position 0 plus v, and the output projection of o [B, T, H, D]. */
void hy_attention_init(hy_attention_layer *a, hy_params *ps, const char *prefix,
                       const hy_model_config *cfg, hy_rng *rng);
void hy_attention_qkv(const hy_attention_layer *a, hy_tensor *x, hy_tensor **q, hy_tensor **k,
                      hy_tensor **v);
hy_tensor *hy_attention_out(const hy_attention_layer *a, hy_tensor *x, hy_tensor *o);

hy_tensor *hy_attention_layer_forward(const hy_attention_layer *a, hy_tensor *x);

/* The reference: scores [B, H, T, T] materialized, masked, softmaxed and applied with plain ops.
 * Same contract as hy_attention. */
hy_tensor *hy_attention_naive(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale);
hy_tensor *hy_attention_naive_window(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale,
                                     int64_t window);

#endif
