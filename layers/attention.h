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

hy_tensor *hy_attention_layer_forward(const hy_attention_layer *a, hy_tensor *x);

/* The reference: scores [B, H, T, T] materialized, masked, softmaxed and applied with plain ops.
 * Same contract as hy_attention. */
hy_tensor *hy_attention_naive(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale);
hy_tensor *hy_attention_naive_window(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale,
                                     int64_t window);

#endif
