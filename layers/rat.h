/* RAT (mixer kind "rat"; Wei et al. 2025, "RAT: Bridging RNN Efficiency and Attention Accuracy",
 * the paper's rat_slow.py), d = H d_h, G groups of q and k shared by the heads:
 *   z = sigmoid(x W_z), u = x W_u, f = sigmoid(x W_g + b_f)      [B, T, d] each, in H heads
 *   q = x W_q, k = x W_k                                           [B, T, G d_h], head h uses
 *                                                                  group h mod G (torch .repeat)
 *   o = hy_rat(q, u, k, f): the gated recurrence inside chunks of L tokens over u and k, then one
 *       softmax per query over the earlier chunks' final states and its own running state, RoPE
 *       at chunk-level positions, scale d_h^-1/2 (tensor/rat.c has the exact math)
 *   y = (z * o) W_o
 * b_f starts at log(uniform(1, L - 1)) (0 for L <= 2). The block's pre-norm and residual are
 * rat_slow.py's input_norm and shortcut. The plain form is layers/rat_reference.h; decoding
 * carries the running chunk's states and a cache of the finished chunks' final keys and values. */
#ifndef HYLA_RAT_H
#define HYLA_RAT_H

#include "layers/linear.h"
#include "layers/mixer.h"
#include "layers/model.h"

/* The paper's defaults above. */
hy_rat_config hy_rat_config_default(void);
/* The RAT settings of a model configuration ([layer.rat]); the defaults when cfg is NULL. */
const hy_rat_config *hy_rat_config_of(const hy_model_config *cfg);

typedef struct {
  hy_linear z, u, g, q, k, o; /* g carries the gate bias b_f ("g_proj/bias") */
  int64_t heads, groups, head_dim, chunk;
  double rope_theta;
  bool naive;
} hy_rat_layer;

extern const hy_mixer_kind hy_mixer_rat;

/* Registers the parameters under prefix: z_proj, u_proj, g_proj (with the bias), q_proj, k_proj
 * ([G d_h, d]), o_proj. Aborts on sizes that do not split (d into heads of an even size, the
 * heads into groups). */
void hy_rat_layer_init(hy_rat_layer *l, hy_params *ps, const char *prefix,
                       const hy_model_config *cfg, const hy_rat_config *rc, hy_rng *rng);
hy_tensor *hy_rat_layer_forward(const hy_rat_layer *l, hy_tensor *x);
/* The output gate z [B, T, d] and hy_rat's inputs q, u, k, f [B, T, H, d_h] for x [B, T, d]. */
void hy_rat_layer_project(const hy_rat_layer *l, hy_tensor *x, hy_tensor **z, hy_tensor **q,
                          hy_tensor **u, hy_tensor **k, hy_tensor **f);

#endif
