#include "layers/attention.h"
#include "dist/collective_ops.h"
#include "dist/lasp2.h"
#include "layers/model.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void hy_attention_init(hy_attention_layer *a, hy_params *ps, const char *prefix,
                       const hy_model_config *cfg, hy_rng *rng) {
  int64_t d = cfg->d_model;
  if (d % cfg->n_heads != 0 || (d / cfg->n_heads) % 2 != 0)
    hy_die("attn", "d_model %lld must split into %lld heads of an even size", (long long)d,
           (long long)cfg->n_heads);
  a->n_heads = cfg->n_heads;
  a->head_dim = d / cfg->n_heads;
  a->rope_theta = cfg->rope_theta;
  a->naive = cfg->naive_attention;
  a->window = cfg->attn_window;
  char path[HY_PARAM_NAME_MAX];
  const char *names[] = {"q_proj", "k_proj", "v_proj", "o_proj"};
  hy_linear *projs[] = {&a->q, &a->k, &a->v, &a->o};
  for (int i = 0; i < 4; i++) {
    snprintf(path, sizeof path, "%s/%s", prefix, names[i]);
    hy_linear_init(projs[i], ps, path, d, d, false, cfg->dtype, rng,
                   i == 3 ? hy_model_out_std(cfg) : cfg->init_std);
  }
}

static void *attn_create(hy_params *ps, const char *prefix, const hy_model_config *cfg, int layer,
                         hy_rng *rng) {
  (void)layer;
  hy_attention_layer *a = calloc(1, sizeof *a);
  if (!a) hy_die("attn", "out of memory");
  hy_attention_init(a, ps, prefix, cfg, rng);
  return a;
}

static hy_tensor *heads(const hy_attention_layer *a, const hy_linear *proj, hy_tensor *x) {
  hy_tensor *y = hy_linear_forward(proj, x);
  return hy_reshape(y, HY_SHAPE(x->shape[0], x->shape[1], a->n_heads, a->head_dim));
}

void hy_attention_qkv(const hy_attention_layer *a, hy_tensor *x, hy_tensor **q, hy_tensor **k,
                      hy_tensor **v) {
  int64_t offset = hy_sequence_get()->offset; /* a sequence-parallel slice's global positions */
  *q = hy_rope(heads(a, &a->q, x), offset, a->rope_theta);
  *k = hy_rope(heads(a, &a->k, x), offset, a->rope_theta);
  *v = heads(a, &a->v, x);
}

hy_tensor *hy_attention_out(const hy_attention_layer *a, hy_tensor *x, hy_tensor *o) {
  return hy_linear_forward(&a->o, hy_reshape(o, hy_shape_of(x)));
}

hy_tensor *hy_attention_layer_forward(const hy_attention_layer *a, hy_tensor *x) {
  hy_tensor *q, *k, *v;
  hy_attention_qkv(a, x, &q, &k, &v);
  double scale = 1.0 / sqrt((double)a->head_dim);
  if (hy_sequence_parallel()) { /* LASP-2H: every rank's keys and values, global positions */
    int64_t offset = hy_sequence_get()->offset, end = offset + x->shape[1];
    hy_tensor *ks, *vs;
    hy_lasp2h_gather(k, v, &ks, &vs);
    ks = hy_slice(ks, 1, 0, end), vs = hy_slice(vs, 1, 0, end);
    return hy_attention_out(a, x, hy_attention_offset(q, ks, vs, scale, a->window, offset));
  }
  hy_tensor *o = a->naive ? hy_attention_naive_window(q, k, v, scale, a->window)
                          : hy_attention_window(q, k, v, scale, a->window);
  return hy_attention_out(a, x, o);
}

static hy_tensor *attn_forward(void *self, hy_tensor *x) {
  return hy_attention_layer_forward(self, x);
}

/* ---- decoding with a KV cache ---- */

typedef struct {
  hy_tensor *k, *v; /* persistent [B, max_len, H, D]: rotated keys and the values so far */
} kv_cache;

static void *attn_decode_new(void *self, int64_t batch, int64_t max_len) {
  hy_attention_layer *a = self;
  kv_cache *c = calloc(1, sizeof *c);
  if (!c) hy_die("attn", "out of memory");
  hy_shape s = HY_SHAPE(batch, max_len, a->n_heads, a->head_dim);
  c->k = hy_zeros_persistent(a->q.weight->dtype, s);
  c->v = hy_zeros_persistent(a->q.weight->dtype, s);
  return c;
}

static hy_tensor *attn_decode_step(void *self, void *state, hy_tensor *x, int64_t pos) {
  hy_attention_layer *a = self;
  kv_cache *c = state;
  if (pos >= c->k->shape[1])
    hy_die("attn", "decoding position %lld past the cache's %lld", (long long)pos,
           (long long)c->k->shape[1]);
  hy_tensor *q = hy_rope(heads(a, &a->q, x), pos, a->rope_theta);
  hy_copy_into(hy_slice(c->k, 1, pos, pos + 1), hy_rope(heads(a, &a->k, x), pos, a->rope_theta));
  hy_copy_into(hy_slice(c->v, 1, pos, pos + 1), heads(a, &a->v, x));
  /* One query against the cached keys it sees (the last `window` of them): nothing to mask. */
  int64_t first = a->window > 0 && pos + 1 > a->window ? pos + 1 - a->window : 0;
  hy_tensor *kh = hy_transpose(hy_slice(c->k, 1, first, pos + 1), 1, 2);
  hy_tensor *vh = hy_transpose(hy_slice(c->v, 1, first, pos + 1), 1, 2);
  hy_tensor *s = hy_matmul(hy_transpose(q, 1, 2), hy_transpose(kh, 2, 3));
  hy_tensor *p = hy_softmax(hy_scale(s, 1.0 / sqrt((double)a->head_dim)));
  hy_tensor *o = hy_contiguous(hy_transpose(hy_matmul(p, vh), 1, 2)); /* [B, 1, H, D] */
  return hy_linear_forward(&a->o, hy_reshape(o, hy_shape_of(x)));
}

static void attn_decode_free(void *state) {
  kv_cache *c = state;
  if (!c) return;
  hy_free(c->k);
  hy_free(c->v);
  free(c);
}

const hy_mixer_kind hy_mixer_attn = {"attn",          attn_create,      attn_forward,     free,
                                     attn_decode_new, attn_decode_step, attn_decode_free, true};

hy_tensor *hy_attention_naive(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale) {
  return hy_attention_naive_window(q, k, v, scale, 0);
}

hy_tensor *hy_attention_naive_window(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale,
                                     int64_t window) {
  int64_t T = q->shape[1];
  hy_tensor *mask = hy_zeros(q->dtype, HY_SHAPE(T, T));
  for (int64_t i = 0; i < T; i++)
    for (int64_t j = 0; j < T; j++)
      if (j > i || (window > 0 && i - j >= window)) hy_set(mask, i * T + j, -INFINITY);
  hy_tensor *qh = hy_transpose(q, 1, 2), *kh = hy_transpose(k, 1, 2), *vh = hy_transpose(v, 1, 2);
  hy_tensor *s = hy_scale(hy_matmul(qh, hy_transpose(kh, 2, 3)), scale); /* [B, H, T, T] */
  hy_tensor *p = hy_softmax(hy_add(s, mask));
  return hy_contiguous(hy_transpose(hy_matmul(p, vh), 1, 2)); /* [B, T, H, D] */
}
