#include "layers/gla.h"
#include "dist/lasp2.h"
#include "layers/gla_reference.h"
#include "layers/model.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void *gla_create(hy_params *ps, const char *prefix, const hy_model_config *cfg, int layer,
                        hy_rng *rng) {
  (void)layer;
  const hy_gla_config *c = &cfg->gla;
  hy_gla_layer *l = calloc(1, sizeof *l);
  if (!l) hy_die("gla", "out of memory");
  int64_t d = cfg->d_model, H = c->heads ? c->heads : cfg->n_heads;
  int64_t key = (int64_t)(c->expand_k * (double)d), value = (int64_t)(c->expand_v * (double)d);
  if (H < 1 || key % H || value % H)
    hy_die("gla", "key width %lld and value width %lld must split into %lld heads", (long long)key,
           (long long)value, (long long)H);
  *l = (hy_gla_layer){.heads = H,
                      .dk = key / H,
                      .dv = value / H,
                      .gate_norm = c->gate_norm,
                      .norm_eps = c->norm_eps,
                      .chunk = c->chunk,
                      .recurrent = c->recurrent};
  char path[HY_PARAM_NAME_MAX];
  double std = cfg->init_std;
#define PROJ(field, name, in, out, bias, s)                                                        \
  snprintf(path, sizeof path, "%s/%s", prefix, name);                                              \
  hy_linear_init(&l->field, ps, path, in, out, bias, cfg->dtype, rng, s)
  PROJ(q, "q_proj", d, key, false, std);
  PROJ(k, "k_proj", d, key, false, std);
  PROJ(v, "v_proj", d, value, false, std);
  PROJ(gate_down, "gk_proj/0", d, c->gate_rank, false, std);
  PROJ(gate_up, "gk_proj/1", c->gate_rank, key, true, std);
  PROJ(out_gate, "g_proj", d, value, false, std);
  PROJ(o, "o_proj", value, d, false, hy_model_out_std(cfg));
#undef PROJ
  snprintf(path, sizeof path, "%s/g_norm", prefix);
  l->norm_weight = hy_params_add(ps, path, "weight", cfg->dtype, HY_SHAPE(l->dv), false);
  hy_fill(l->norm_weight, 1.0);
  return l;
}

/* [B, T, width] -> [B, T, heads, width / heads] */
static hy_tensor *split_heads(hy_tensor *x, int64_t heads) {
  return hy_reshape(x, HY_SHAPE(x->shape[0], x->shape[1], heads, x->shape[2] / heads));
}

/* q (scaled), k, v and the log forget gate of x [B, T, d], in heads. */
static void project(const hy_gla_layer *l, hy_tensor *x, hy_tensor **q, hy_tensor **k,
                    hy_tensor **v, hy_tensor **g) {
  *q = split_heads(hy_scale(hy_linear_forward(&l->q, x), 1.0 / sqrt((double)l->dk)), l->heads);
  *k = split_heads(hy_linear_forward(&l->k, x), l->heads);
  *v = split_heads(hy_linear_forward(&l->v, x), l->heads);
  hy_tensor *logits = hy_linear_forward(&l->gate_up, hy_linear_forward(&l->gate_down, x));
  *g = split_heads(hy_scale(hy_logsigmoid(logits), 1.0 / l->gate_norm), l->heads);
}

/* y = (RMSNorm_per_head(o) * silu(x W_g)) W_o, for o [B, T, H, dv]. */
static hy_tensor *output(const hy_gla_layer *l, hy_tensor *x, hy_tensor *o) {
  hy_tensor *normed = hy_rmsnorm(o, l->norm_weight, l->norm_eps);
  hy_tensor *gate = split_heads(hy_silu(hy_linear_forward(&l->out_gate, x)), l->heads);
  hy_tensor *y = hy_mul(normed, gate);
  return hy_linear_forward(&l->o, hy_reshape(y, HY_SHAPE(x->shape[0], x->shape[1], -1)));
}

hy_tensor *hy_gla_layer_forward(const hy_gla_layer *l, hy_tensor *x) {
  hy_tensor *q, *k, *v, *g;
  project(l, x, &q, &k, &v, &g);
  hy_tensor *o =
      l->recurrent ? hy_gla_recurrent(q, k, v, g) : hy_gla_lasp2(q, k, v, g, NULL, l->chunk);
  return output(l, x, o);
}

static hy_tensor *gla_forward(void *self, hy_tensor *x) { return hy_gla_layer_forward(self, x); }

/* ---- decoding: the state S [B, H, dk, dv] carried from token to token ---- */

static void *gla_decode_new(void *self, int64_t batch, int64_t max_len) {
  (void)max_len; /* the state does not grow with the sequence */
  hy_gla_layer *l = self;
  return hy_zeros_persistent(l->q.weight->dtype, HY_SHAPE(batch, l->heads, l->dk, l->dv));
}

static hy_tensor *gla_decode_step(void *self, void *state, hy_tensor *x, int64_t pos) {
  (void)pos;
  hy_gla_layer *l = self;
  hy_tensor *S = state, *q, *k, *v, *g;
  project(l, x, &q, &k, &v, &g);
  int64_t B = x->shape[0], H = l->heads;
  /* S = diag(exp(g)) S + k^T v;  o = q S */
  hy_tensor *decay = hy_exp(hy_reshape(g, HY_SHAPE(B, H, l->dk, 1)));
  hy_tensor *kv =
      hy_matmul(hy_reshape(k, HY_SHAPE(B, H, l->dk, 1)), hy_reshape(v, HY_SHAPE(B, H, 1, l->dv)));
  hy_copy_into(S, hy_add(hy_mul(S, decay), kv));
  hy_tensor *o = hy_matmul(hy_reshape(q, HY_SHAPE(B, H, 1, l->dk)), S);
  return output(l, x, hy_reshape(o, HY_SHAPE(B, 1, H, l->dv)));
}

static void gla_decode_free(void *state) { hy_free(state); }

const hy_mixer_kind hy_mixer_gla = {"gla",          gla_create,      gla_forward,     free,
                                    gla_decode_new, gla_decode_step, gla_decode_free, true};
