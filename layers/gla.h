/* Gated linear attention (mixer kind "gla"; Yang et al. 2023, flash-linear-attention's GLA):
 *   q = x W_q / sqrt(d_k),  k = x W_k,  v = x W_v   in H heads (d_k = expand_k d / H,
 *                                                    d_v = expand_v d / H)
 *   log a_t = logsigmoid(x W_a1 W_a2 + b_a) / gate_norm   (a forget gate per key channel)
 *   S_t = diag(a_t) S_{t-1} + k_t^T v_t,   o_t = q_t S_t   (hy_gla, chunked)
 *   y = (RMSNorm_per_head(o) * silu(x W_g)) W_o
 * The step-by-step recurrence (layers/gla_reference.h) is the reference; decoding carries S. */
#ifndef HYLA_GLA_H
#define HYLA_GLA_H

#include "layers/linear.h"
#include "layers/mixer.h"

typedef struct {
  hy_linear q, k, v, gate_down, gate_up, out_gate, o;
  hy_tensor *norm_weight; /* [d_v], shared by the heads */
  int64_t heads, dk, dv;
  double gate_norm, norm_eps;
  int64_t chunk;
  bool recurrent;
} hy_gla_layer;

extern const hy_mixer_kind hy_mixer_gla;

hy_tensor *hy_gla_layer_forward(const hy_gla_layer *l, hy_tensor *x);

#endif
