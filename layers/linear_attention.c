#include "layers/linear_attention.h"
#include "dist/lasp2.h"
#include "layers/gla_reference.h"
#include "layers/model.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hy_feature_map_of(const char *name) {
  if (!strcmp(name, "identity")) return HY_PHI_IDENTITY;
  if (!strcmp(name, "elu")) return HY_PHI_ELU;
  if (!strcmp(name, "relu")) return HY_PHI_RELU;
  return -1;
}

static void *linear_create(hy_params *ps, const char *prefix, const hy_model_config *cfg, int layer,
                           hy_rng *rng) {
  (void)layer;
  const hy_linear_attn_config *c = &cfg->linear;
  int64_t d = cfg->d_model, H = c->heads ? c->heads : cfg->n_heads;
  int phi = hy_feature_map_of(c->feature_map);
  if (H < 1 || d % H)
    hy_die("linear", "d_model %lld does not split into %lld heads", (long long)d, (long long)H);
  if (phi < 0) hy_die("linear", "unknown feature map '%s'", c->feature_map);
  hy_linear_attn_layer *l = calloc(1, sizeof *l);
  if (!l) hy_die("linear", "out of memory");
  *l = (hy_linear_attn_layer){.heads = H,
                              .head_dim = d / H,
                              .chunk = c->chunk,
                              .phi = (hy_feature_map)phi,
                              .norm_eps = c->norm_eps,
                              .recurrent = c->recurrent};
  char path[HY_PARAM_NAME_MAX];
  const char *names[] = {"q_proj", "k_proj", "v_proj", "o_proj"};
  hy_linear *projs[] = {&l->q, &l->k, &l->v, &l->o};
  for (int i = 0; i < 4; i++) {
    snprintf(path, sizeof path, "%s/%s", prefix, names[i]);
    hy_linear_init(projs[i], ps, path, d, d, false, cfg->dtype, rng,
                   i == 3 ? hy_model_out_std(cfg) : cfg->init_std);
  }
  snprintf(path, sizeof path, "%s/norm", prefix);
  l->norm_weight = hy_params_add(ps, path, "weight", cfg->dtype, HY_SHAPE(l->head_dim), false);
  hy_fill(l->norm_weight, 1.0);
  return l;
}

static hy_tensor *feature_map(const hy_linear_attn_layer *l, hy_tensor *x) {
  switch (l->phi) {
  case HY_PHI_ELU: return hy_add_scalar(hy_elu(x), 1.0);
  case HY_PHI_RELU: return hy_relu(x);
  case HY_PHI_IDENTITY: break;
  }
  return x;
}

/* q (feature-mapped, scaled), k (feature-mapped) and v of x, as [B, T, H, d_h]. */
static void project(const hy_linear_attn_layer *l, hy_tensor *x, hy_tensor **q, hy_tensor **k,
                    hy_tensor **v) {
  hy_shape s = HY_SHAPE(x->shape[0], x->shape[1], l->heads, l->head_dim);
  double scale = 1.0 / sqrt((double)l->head_dim);
  *q = hy_reshape(hy_scale(feature_map(l, hy_linear_forward(&l->q, x)), scale), s);
  *k = hy_reshape(feature_map(l, hy_linear_forward(&l->k, x)), s);
  *v = hy_reshape(hy_linear_forward(&l->v, x), s);
}

static hy_tensor *output(const hy_linear_attn_layer *l, hy_tensor *x, hy_tensor *o) {
  hy_tensor *normed = hy_rmsnorm(o, l->norm_weight, l->norm_eps);
  return hy_linear_forward(&l->o, hy_reshape(normed, hy_shape_of(x)));
}

hy_tensor *hy_linear_attn_layer_forward(const hy_linear_attn_layer *l, hy_tensor *x) {
  hy_tensor *q, *k, *v;
  project(l, x, &q, &k, &v);
  hy_tensor *o =
      l->recurrent ? hy_gla_recurrent(q, k, v, NULL) : hy_gla_lasp2(q, k, v, NULL, NULL, l->chunk);
  return output(l, x, o);
}

static hy_tensor *linear_forward(void *self, hy_tensor *x) {
  return hy_linear_attn_layer_forward(self, x);
}

/* ---- decoding: S [B, H, d_h, d_h] <- S + k^T v ---- */

static void *linear_decode_new(void *self, int64_t batch, int64_t max_len) {
  (void)max_len;
  hy_linear_attn_layer *l = self;
  return hy_zeros_persistent(l->q.weight->dtype,
                             HY_SHAPE(batch, l->heads, l->head_dim, l->head_dim));
}

static hy_tensor *linear_decode_step(void *self, void *state, hy_tensor *x, int64_t pos) {
  (void)pos;
  hy_linear_attn_layer *l = self;
  hy_tensor *S = state, *q, *k, *v;
  project(l, x, &q, &k, &v);
  int64_t B = x->shape[0], H = l->heads, D = l->head_dim;
  hy_tensor *kv =
      hy_matmul(hy_reshape(k, HY_SHAPE(B, H, D, 1)), hy_reshape(v, HY_SHAPE(B, H, 1, D)));
  hy_copy_into(S, hy_add(S, kv));
  hy_tensor *o = hy_matmul(hy_reshape(q, HY_SHAPE(B, H, 1, D)), S);
  return output(l, x, hy_reshape(o, HY_SHAPE(B, 1, H, D)));
}

static void linear_decode_free(void *state) { hy_free(state); }

const hy_mixer_kind hy_mixer_linear = {
    "linear",          linear_create,      linear_forward,     free,
    linear_decode_new, linear_decode_step, linear_decode_free, true};
