/* A short causal convolution gating a projection (mixer kind "conv"; the BaseConv of Zoology,
 * Arora et al. 2023): per token t and channel c of x [B, T, d],
 *   z_{t,c} = b_c + sum_{i=0}^{K-1} w_{i,c} x_{t-i,c}   (x before the sequence start is zero)
 *   y = (x W) * z
 * The convolution moves the previous tokens into each position, so that an attention layer after
 * it can match a key to the token that followed it (associative recall) in one step. */
#ifndef HYLA_CONV_H
#define HYLA_CONV_H

#include "layers/linear.h"
#include "layers/mixer.h"

typedef struct {
  hy_linear proj;  /* W [d, d], no bias */
  hy_tensor *taps; /* w [K, d]: row i weighs the token i steps back */
  hy_tensor *bias; /* b [d] */
  int64_t kernel;  /* K */
} hy_conv_layer;

extern const hy_mixer_kind hy_mixer_conv;

hy_tensor *hy_conv_layer_forward(const hy_conv_layer *l, hy_tensor *x);

#endif
