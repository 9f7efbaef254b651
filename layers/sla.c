#include "layers/sla.h"
#include "layers/model.h"
#include "layers/prefix_decode.h"
#include "layers/sla_reference.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hy_sla_feature_map_of(const char *name) {
  if (!strcmp(name, "softmax")) return HY_SLA_PHI_SOFTMAX;
  if (!strcmp(name, "elu")) return HY_SLA_PHI_ELU;
  if (!strcmp(name, "relu")) return HY_SLA_PHI_RELU;
  return -1;
}

static void *sla_create(hy_params *ps, const char *prefix, const hy_model_config *cfg, int layer,
                        hy_rng *rng) {
  (void)layer;
  const hy_sla_config *c = &cfg->sla;
  int phi = hy_sla_feature_map_of(c->feature_map);
  if (phi < 0) hy_die("sla", "unknown feature map '%s'", c->feature_map);
  if (c->block < 1) hy_die("sla", "block must be >= 1, got %lld", (long long)c->block);
  hy_sla_layer *l = calloc(1, sizeof *l);
  if (!l) hy_die("sla", "out of memory");
  hy_attention_init(&l->attn, ps, prefix, cfg, rng);
  l->block = c->block;
  l->critical = c->critical;
  l->negligible = c->negligible;
  l->feature_map = phi;
  l->naive = c->naive;
  char path[HY_PARAM_NAME_MAX];
  snprintf(path, sizeof path, "%s/proj_l", prefix);
  int64_t D = l->attn.head_dim;
  hy_linear_init(&l->proj_l, ps, path, D, D, true, cfg->dtype, rng, 0.0);
  hy_fill(l->proj_l.weight, 0.0); /* zero: the linear branch starts switched off */
  return l;
}

hy_tensor *hy_sla_layer_forward(const hy_sla_layer *l, hy_tensor *x) {
  hy_tensor *q, *k, *v;
  hy_attention_qkv(&l->attn, x, &q, &k, &v);
  int64_t D = l->attn.head_dim;
  double scale = 1.0 / sqrt((double)D);
  hy_tensor *both =
      l->naive ? hy_sla_naive(q, k, v, scale, l->critical, l->negligible, l->feature_map, l->block)
               : hy_sla(q, k, v, scale, l->critical, l->negligible, l->feature_map, l->block, NULL);
  hy_tensor *parts[2]; /* o_s, o_l: [B, T, H, D] each */
  hy_split(both, 3, 2, (int64_t[]){D, D}, parts);
  hy_tensor *o = hy_add(parts[0], hy_linear_forward(&l->proj_l, parts[1]));
  return hy_attention_out(&l->attn, x, o);
}

static hy_tensor *sla_forward(void *self, hy_tensor *x) { return hy_sla_layer_forward(self, x); }

static void *sla_decode_new(void *self, int64_t batch, int64_t max_len) {
  hy_sla_layer *l = self;
  hy_tensor *w = l->attn.q.weight;
  return hy_prefix_decode_new(self, batch, max_len, w->shape[1], w->dtype);
}

static hy_tensor *sla_decode_step(void *self, void *state, hy_tensor *x, int64_t pos) {
  return hy_prefix_decode_step(self, state, x, pos, sla_forward);
}

const hy_mixer_kind hy_mixer_sla = {"sla",          sla_create,      sla_forward,           free,
                                    sla_decode_new, sla_decode_step, hy_prefix_decode_free, false};
