#include "layers/sigmoid_attention.h"
#include "layers/model.h"
#include "dist/lasp2.h"
#include "layers/prefix_decode.h"
#include "layers/softmax_variants_reference.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void *sigmoid_create(hy_params *ps, const char *prefix, const hy_model_config *cfg,
                            int layer, hy_rng *rng) {
  (void)layer;
  const hy_sigmoid_config *c = &cfg->sigmoid;
  if (c->bias_log_n && c->seq_len < 1)
    hy_die("sigmoid", "the bias -log(n) needs a sequence length >= 1, got %lld",
           (long long)c->seq_len);
  hy_sigmoid_attention_layer *l = calloc(1, sizeof *l);
  if (!l) hy_die("sigmoid", "out of memory");
  hy_attention_init(&l->attn, ps, prefix, cfg, rng);
  l->bias = c->bias_log_n ? -log((double)c->seq_len) : c->bias;
  l->norm_eps = c->norm_eps;
  l->naive = c->naive;
  if (c->output_norm) {
    char path[HY_PARAM_NAME_MAX];
    snprintf(path, sizeof path, "%s/norm", prefix);
    l->norm_weight =
        hy_params_add(ps, path, "weight", cfg->dtype, HY_SHAPE(l->attn.head_dim), false);
    hy_fill(l->norm_weight, 1.0);
  }
  return l;
}

static hy_tensor *attend(const void *layer, hy_tensor *q, hy_tensor *k, hy_tensor *v) {
  const hy_sigmoid_attention_layer *l = layer;
  double scale = 1.0 / sqrt((double)l->attn.head_dim);
  return l->naive ? hy_sigmoid_attention_naive(q, k, v, scale, l->bias)
                  : hy_sigmoid_attention(q, k, v, scale, l->bias);
}

hy_tensor *hy_sigmoid_attention_layer_forward(const hy_sigmoid_attention_layer *l, hy_tensor *x) {
  hy_tensor *q, *k, *v;
  hy_attention_qkv(&l->attn, x, &q, &k, &v);
  hy_tensor *o = hy_lasp2h_attend(attend, l, q, k, v);
  if (l->norm_weight) o = hy_rmsnorm(o, l->norm_weight, l->norm_eps);
  return hy_attention_out(&l->attn, x, o);
}

static hy_tensor *sigmoid_forward(void *self, hy_tensor *x) {
  return hy_sigmoid_attention_layer_forward(self, x);
}

static void *sigmoid_decode_new(void *self, int64_t batch, int64_t max_len) {
  hy_sigmoid_attention_layer *l = self;
  hy_tensor *w = l->attn.q.weight;
  return hy_prefix_decode_new(self, batch, max_len, w->shape[1], w->dtype);
}

static hy_tensor *sigmoid_decode_step(void *self, void *state, hy_tensor *x, int64_t pos) {
  return hy_prefix_decode_step(self, state, x, pos, sigmoid_forward);
}

const hy_mixer_kind hy_mixer_sigmoid = {
    "sigmoid",          sigmoid_create,      sigmoid_forward,       free,
    sigmoid_decode_new, sigmoid_decode_step, hy_prefix_decode_free, true};
