/* Sigmoid attention (mixer kind "sigmoid"; Ramapuram et al. 2024, "Theory, Analysis, and Best
 * Practices for Sigmoid Self-Attention"): the softmax layer's projections and RoPE
 * (layers/attention.h), then o_t = sum_{s <= t} sigmoid(q_t . k_s / sqrt(d_h) + b) v_s with no
 * normalization over s, b = -log(n) for n the training length (or a fixed bias), an optional
 * RMSNorm per head on o, and the output projection. The fused op is hy_sigmoid_attention; the
 * naive form (layers/softmax_variants_reference.h) is used when the config says so. Decoding
 * recomputes the prefix (layers/prefix_decode.h). */
#ifndef HYLA_SIGMOID_ATTENTION_H
#define HYLA_SIGMOID_ATTENTION_H

#include "layers/attention.h"

typedef struct {
  hy_attention_layer attn; /* q, k, v, o projections and RoPE */
  double bias;             /* b of the scores */
  hy_tensor *norm_weight;  /* [d_h], the output RMSNorm's gain; NULL without output_norm */
  double norm_eps;
  bool naive;
} hy_sigmoid_attention_layer;

extern const hy_mixer_kind hy_mixer_sigmoid;

hy_tensor *hy_sigmoid_attention_layer_forward(const hy_sigmoid_attention_layer *l, hy_tensor *x);

#endif
