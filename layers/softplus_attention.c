#include "layers/softplus_attention.h"
#include "layers/model.h"
#include "dist/lasp2.h"
#include "layers/prefix_decode.h"
#include "layers/softmax_variants_reference.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdlib.h>

static void *softplus_create(hy_params *ps, const char *prefix, const hy_model_config *cfg,
                             int layer, hy_rng *rng) {
  (void)layer;
  const hy_softplus_config *c = &cfg->softplus;
  if (!(c->power > 0)) hy_die("softplus", "power must be > 0, got %g", c->power);
  if (c->length_scale && c->train_len < 2)
    hy_die("softplus", "length scaling needs a training length >= 2, got %lld",
           (long long)c->train_len);
  hy_softplus_attention_layer *l = calloc(1, sizeof *l);
  if (!l) hy_die("softplus", "out of memory");
  hy_attention_init(&l->attn, ps, prefix, cfg, rng);
  l->train_len = c->length_scale ? c->train_len : 0;
  l->power = c->power;
  l->naive = c->naive;
  return l;
}

/* Positions start at 0: under LASP-2H the queries arrive padded to their global positions. */
static hy_tensor *attend(const void *layer, hy_tensor *q, hy_tensor *k, hy_tensor *v) {
  const hy_softplus_attention_layer *l = layer;
  double scale = 1.0 / sqrt((double)l->attn.head_dim);
  return l->naive ? hy_softplus_attention_naive(q, k, v, scale, l->train_len, l->power, 0)
                  : hy_softplus_attention(q, k, v, scale, l->train_len, l->power, 0);
}

hy_tensor *hy_softplus_attention_layer_forward(const hy_softplus_attention_layer *l, hy_tensor *x) {
  hy_tensor *q, *k, *v;
  hy_attention_qkv(&l->attn, x, &q, &k, &v);
  hy_tensor *o = hy_lasp2h_attend(attend, l, q, k, v);
  return hy_attention_out(&l->attn, x, o);
}

static hy_tensor *softplus_forward(void *self, hy_tensor *x) {
  return hy_softplus_attention_layer_forward(self, x);
}

static void *softplus_decode_new(void *self, int64_t batch, int64_t max_len) {
  hy_softplus_attention_layer *l = self;
  hy_tensor *w = l->attn.q.weight;
  return hy_prefix_decode_new(self, batch, max_len, w->shape[1], w->dtype);
}

static hy_tensor *softplus_decode_step(void *self, void *state, hy_tensor *x, int64_t pos) {
  return hy_prefix_decode_step(self, state, x, pos, softplus_forward);
}

const hy_mixer_kind hy_mixer_softplus = {
    "softplus",          softplus_create,      softplus_forward,      free,
    softplus_decode_new, softplus_decode_step, hy_prefix_decode_free, true};
