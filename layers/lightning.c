#include "layers/lightning.h"
#include "dist/lasp2.h"
#include "layers/gla_reference.h"
#include "layers/model.h"
#include "tensor/ops.h"

#include <stdio.h>
#include <math.h>
#include <stdlib.h>

static void *lightning_create(hy_params *ps, const char *prefix, const hy_model_config *cfg,
                              int layer, hy_rng *rng) {
  const hy_lightning_config *c = &cfg->lightning;
  int64_t d = cfg->d_model, H = c->heads ? c->heads : cfg->n_heads;
  if (H < 1 || d % H)
    hy_die("lightning", "d_model %lld does not split into %lld heads", (long long)d, (long long)H);
  hy_lightning_layer *l = calloc(1, sizeof *l);
  double *decay = calloc((size_t)H, sizeof *decay);
  if (!l || !decay) hy_die("lightning", "out of memory");
  *l = (hy_lightning_layer){.heads = H,
                            .head_dim = d / H,
                            .chunk = c->chunk,
                            .log_decay = decay,
                            .norm_eps = c->norm_eps,
                            .recurrent = c->recurrent};
  for (int64_t h = 0; h < H; h++)
    decay[h] = -(8.0 / (double)H) * (1.0 - (double)layer / (double)cfg->n_layers) * (double)h;
  char path[HY_PARAM_NAME_MAX];
  const char *names[] = {"q_proj", "k_proj", "v_proj", "u_proj", "o_proj"};
  hy_linear *projs[] = {&l->q, &l->k, &l->v, &l->u, &l->o};
  for (int i = 0; i < 5; i++) {
    snprintf(path, sizeof path, "%s/%s", prefix, names[i]);
    hy_linear_init(projs[i], ps, path, d, d, false, cfg->dtype, rng,
                   i == 4 ? hy_model_out_std(cfg) : cfg->init_std);
  }
  return l;
}

static void lightning_destroy(void *self) {
  hy_lightning_layer *l = self;
  free(l->log_decay);
  free(l);
}

static hy_tensor *heads(const hy_lightning_layer *l, hy_tensor *y) {
  return hy_reshape(y, HY_SHAPE(y->shape[0], y->shape[1], l->heads, l->head_dim));
}

/* The constant log decays as a [B, T, H, d_h] tensor, for the reference recurrence. */
static hy_tensor *log_decays(const hy_lightning_layer *l, hy_tensor *x) {
  int64_t B = x->shape[0], T = x->shape[1], H = l->heads, D = l->head_dim;
  hy_tensor *g = hy_empty(x->dtype, HY_SHAPE(B, T, H, D));
  for (int64_t r = 0; r < B * T; r++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < D; i++) hy_set(g, (r * H + h) * D + i, l->log_decay[h]);
  return g;
}

/* y = (u * SRMSNorm(o)) W_o, for o [B, T, H, d_h]. */
static hy_tensor *output(const hy_lightning_layer *l, hy_tensor *x, hy_tensor *o) {
  hy_tensor *flat = hy_reshape(o, hy_shape_of(x));
  hy_tensor *gated = hy_mul(hy_linear_forward(&l->u, x), hy_rmsnorm(flat, NULL, l->norm_eps));
  return hy_linear_forward(&l->o, gated);
}

hy_tensor *hy_lightning_layer_forward(const hy_lightning_layer *l, hy_tensor *x) {
  hy_tensor *q = heads(l, hy_silu(hy_linear_forward(&l->q, x)));
  hy_tensor *k = heads(l, hy_silu(hy_linear_forward(&l->k, x)));
  hy_tensor *v = heads(l, hy_linear_forward(&l->v, x));
  hy_tensor *o = l->recurrent ? hy_gla_recurrent(q, k, v, log_decays(l, x))
                              : hy_gla_lasp2(q, k, v, NULL, l->log_decay, l->chunk);
  return output(l, x, o);
}

static hy_tensor *lightning_forward(void *self, hy_tensor *x) {
  return hy_lightning_layer_forward(self, x);
}

/* ---- decoding: S [B, H, d_h, d_h] <- lambda_h S + k^T v ---- */

static void *lightning_decode_new(void *self, int64_t batch, int64_t max_len) {
  (void)max_len;
  hy_lightning_layer *l = self;
  return hy_zeros_persistent(l->q.weight->dtype,
                             HY_SHAPE(batch, l->heads, l->head_dim, l->head_dim));
}

static hy_tensor *lightning_decode_step(void *self, void *state, hy_tensor *x, int64_t pos) {
  (void)pos;
  hy_lightning_layer *l = self;
  hy_tensor *S = state;
  int64_t B = x->shape[0], H = l->heads, D = l->head_dim;
  hy_tensor *q = hy_reshape(hy_silu(hy_linear_forward(&l->q, x)), HY_SHAPE(B, H, 1, D));
  hy_tensor *k = hy_reshape(hy_silu(hy_linear_forward(&l->k, x)), HY_SHAPE(B, H, D, 1));
  hy_tensor *v = hy_reshape(hy_linear_forward(&l->v, x), HY_SHAPE(B, H, 1, D));
  hy_tensor *decay = hy_empty(x->dtype, HY_SHAPE(H, 1, 1));
  for (int64_t h = 0; h < H; h++) hy_set(decay, h, exp(l->log_decay[h]));
  hy_copy_into(S, hy_add(hy_mul(S, decay), hy_matmul(k, v)));
  hy_tensor *o = hy_matmul(q, S); /* [B, H, 1, D] */
  return output(l, x, hy_reshape(o, HY_SHAPE(B, 1, H, D)));
}

static void lightning_decode_free(void *state) { hy_free(state); }

const hy_mixer_kind hy_mixer_lightning = {
    "lightning",          lightning_create,      lightning_forward,     lightning_destroy,
    lightning_decode_new, lightning_decode_step, lightning_decode_free, true};
