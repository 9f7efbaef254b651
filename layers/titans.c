#include "layers/titans.h"
#include "dist/collective_ops.h"
#include "layers/model.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

hy_titans_config hy_titans_config_default(void) { return hy_model_config_default().titans; }

const hy_titans_config *hy_titans_config_of(const hy_model_config *cfg) {
  static hy_titans_config defaults;
  if (cfg) return &cfg->titans;
  defaults = hy_titans_config_default();
  return &defaults;
}

hy_titans_layer *hy_titans_new(hy_params *ps, const char *prefix, const hy_model_config *cfg,
                               const hy_titans_config *tc, bool gate, hy_rng *rng) {
  if (tc->window < 0 || tc->persistent < 0)
    hy_die("titans", "window %lld and persistent %lld must be >= 0", (long long)tc->window,
           (long long)tc->persistent);
  hy_titans_layer *l = calloc(1, sizeof *l);
  if (!l) hy_die("titans", "out of memory");
  l->gate = gate;
  l->norm_eps = cfg->norm_eps;
  char path[HY_PARAM_NAME_MAX];
  snprintf(path, sizeof path, "%s/memory", prefix);
  hy_titans_memory_init(&l->mem, ps, path, tc, cfg->d_model, cfg->dtype, rng, cfg->init_std,
                        cfg->init_std);
  snprintf(path, sizeof path, "%s/attn", prefix);
  hy_attention_init(&l->attn, ps, path, cfg, rng);
  l->attn.window = tc->window;
  l->attn.naive = false;
  if (tc->persistent > 0) { /* zeros, as titans-pytorch's persistent_memory */
    hy_shape s = HY_SHAPE(tc->persistent, l->attn.n_heads, l->attn.head_dim);
    l->pk = hy_params_add(ps, path, "persistent_k", cfg->dtype, s, false);
    l->pv = hy_params_add(ps, path, "persistent_v", cfg->dtype, s, false);
  }
  if (gate) {
    snprintf(path, sizeof path, "%s/attn_norm", prefix);
    l->attn_norm = hy_params_add(ps, path, "weight", cfg->dtype, HY_SHAPE(cfg->d_model), false);
    hy_fill(l->attn_norm, 1.0);
    snprintf(path, sizeof path, "%s/memory_norm", prefix);
    l->mem_norm = hy_params_add(ps, path, "weight", cfg->dtype, HY_SHAPE(cfg->d_model), false);
    hy_fill(l->mem_norm, 1.0);
  }
  return l;
}

/* ---- sliding-window attention with persistent keys and values ---- */

hy_tensor *hy_titans_blocks(hy_tensor *x, int64_t nb, int64_t W) {
  int64_t B = x->shape[0], T = x->shape[1], H = x->shape[2], D = x->shape[3];
  hy_tensor *xt = hy_contiguous(hy_transpose(x, 1, 2));
  if (nb * W > T)
    xt = hy_concat(2, (hy_tensor *[]){xt, hy_zeros(x->dtype, HY_SHAPE(B, H, nb * W - T, D))}, 2);
  return hy_reshape(xt, HY_SHAPE(B * H, nb, W, D));
}

hy_tensor *hy_titans_repeat_persistent(hy_tensor *p, hy_dtype dtype, int64_t B, int64_t nb) {
  p = hy_cast(p, dtype); /* f32 parameters beside bf16 activations */
  int64_t n = p->shape[0], H = p->shape[1], D = p->shape[2];
  hy_tensor *pt = hy_reshape(hy_contiguous(hy_transpose(p, 0, 1)), HY_SHAPE(1, H, 1, n * D));
  hy_tensor *e = hy_add(hy_zeros(p->dtype, HY_SHAPE(B, H, nb, n * D)), pt);
  return hy_reshape(e, HY_SHAPE(B * H, nb, n, D));
}

/* The blocks before each block: [B * H, nb, W, D] with zeros before the first. */
static hy_tensor *previous_blocks(hy_tensor *xb) {
  int64_t nb = xb->shape[1];
  hy_tensor *zero = hy_zeros(xb->dtype, HY_SHAPE(xb->shape[0], 1, xb->shape[2], xb->shape[3]));
  if (nb == 1) return zero;
  return hy_concat(2, (hy_tensor *[]){zero, hy_slice(xb, 1, 0, nb - 1)}, 1);
}

/* The additive masks of the blocked attentions, [nb, W, L]: 0 where query i of block j sees key
 * c, -1e30 elsewhere (as -inf to the softmax, whose exp of it is 0, but finite, so that
 * HYLA_CHECK_FINITE does not take the mask for a fault). Built on the host once per layout, dtype
 * and device and kept for the process: on a GPU a later step copies nothing, so a captured CUDA
 * graph replays reading the same memory. */
typedef enum { WINDOW_MASK, SEGMENT_MASK } mask_rule;

typedef struct mask_entry {
  mask_rule rule;
  int64_t nb, W, L, P, window;
  hy_dtype dtype;
  hy_device device;
  hy_tensor *mask; /* persistent */
  struct mask_entry *next;
} mask_entry;

static mask_entry *masks;

static void free_masks(void) {
  while (masks) {
    mask_entry *e = masks;
    masks = e->next;
    hy_free(e->mask);
    free(e);
  }
}

/* WINDOW_MASK: query t = j W + i sees the P persistent keys, and keys s with t - window < s <= t
 * (window 0: one block, causal). SEGMENT_MASK (one block of W queries, L = P + 2 W): the P
 * persistent keys, then the memory's read-outs and the segment's own keys, each up to i. */
static bool seen(const mask_entry *e, int64_t j, int64_t i, int64_t c) {
  if (c < e->P) return true;
  c -= e->P;
  if (e->rule == SEGMENT_MASK) return (c < e->W ? c : c - e->W) <= i;
  int64_t t = j * e->W + i, s = e->window ? (j - 1) * e->W + c : j * e->W + c;
  return s >= 0 && s <= t && (!e->window || s > t - e->window);
}

static hy_tensor *cached_mask(mask_entry key) {
  for (mask_entry *e = masks; e; e = e->next)
    if (e->rule == key.rule && e->nb == key.nb && e->W == key.W && e->L == key.L && e->P == key.P &&
        e->window == key.window && e->dtype == key.dtype && e->device == key.device)
      return e->mask;
  hy_tensor *host = hy_empty_persistent_on(HY_CPU, key.dtype, HY_SHAPE(key.nb, key.W, key.L));
  for (int64_t j = 0; j < key.nb; j++)
    for (int64_t i = 0; i < key.W; i++)
      for (int64_t c = 0; c < key.L; c++)
        hy_set(host, (j * key.W + i) * key.L + c, seen(&key, j, i, c) ? 0.0 : -1e30);
  mask_entry *e = malloc(sizeof *e);
  if (!e) hy_die("titans_attention", "out of memory");
  *e = key;
  e->mask = host;
  e->next = masks;
  if (key.device != HY_CPU) {
    e->mask = hy_empty_persistent_on(key.device, key.dtype, HY_SHAPE(key.nb, key.W, key.L));
    hy_copy_into(e->mask, host);
    hy_free(host);
  }
  if (!masks) atexit(free_masks);
  masks = e;
  return e->mask;
}

hy_tensor *hy_titans_segment_mask(hy_dtype dtype, hy_device device, int64_t n, int64_t P) {
  return cached_mask((mask_entry){.rule = SEGMENT_MASK,
                                  .nb = 1,
                                  .W = n,
                                  .L = P + 2 * n,
                                  .P = P,
                                  .dtype = dtype,
                                  .device = device});
}

hy_tensor *hy_titans_block_attention(hy_tensor *qb, hy_tensor *keys, hy_tensor *values,
                                     hy_tensor *mask, double scale, int64_t B, int64_t T) {
  int64_t H = qb->shape[0] / B, nb = qb->shape[1], W = qb->shape[2], D = qb->shape[3];
  hy_tensor *s = hy_scale(hy_matmul(qb, hy_transpose(keys, 2, 3)), scale); /* [BH, nb, W, L] */
  hy_tensor *o = hy_matmul(hy_softmax(hy_add(s, mask)), values);           /* [BH, nb, W, D] */
  o = hy_slice(hy_reshape(o, HY_SHAPE(B, H, nb * W, D)), 2, 0, T);
  return hy_contiguous(hy_transpose(o, 1, 2));
}

hy_tensor *hy_titans_window_attention(hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *pk,
                                      hy_tensor *pv, double scale, int64_t window) {
  if (!pk || pk->shape[0] == 0) return hy_attention_window(q, k, v, scale, window);
  int64_t B = q->shape[0], T = q->shape[1], H = q->shape[2], D = q->shape[3], P = pk->shape[0];
  if (pk->ndim != 3 || pk->shape[1] != H || pk->shape[2] != D || !hy_same_shape(pk, pv))
    hy_die("titans_attention", "persistent keys %s and values %s do not fit queries %s",
           hy_describe(pk), hy_describe(pv), hy_describe(q));
  if (T == 0) return hy_zeros(q->dtype, HY_SHAPE(B, 0, H, D));
  bool slide = window > 0 && window < T; /* else one block of causal attention */
  int64_t W = slide ? window : T, nb = (T + W - 1) / W, L = P + (slide ? 2 * W : W);
  hy_tensor *qb = hy_titans_blocks(q, nb, W), *kb = hy_titans_blocks(k, nb, W);
  hy_tensor *vb = hy_titans_blocks(v, nb, W);
  hy_tensor *pkb = hy_titans_repeat_persistent(pk, q->dtype, B, nb);
  hy_tensor *pvb = hy_titans_repeat_persistent(pv, q->dtype, B, nb);
  hy_tensor *keys, *values;
  if (slide) {
    keys = hy_concat(3, (hy_tensor *[]){pkb, previous_blocks(kb), kb}, 2);
    values = hy_concat(3, (hy_tensor *[]){pvb, previous_blocks(vb), vb}, 2);
  } else {
    keys = hy_concat(2, (hy_tensor *[]){pkb, kb}, 2);
    values = hy_concat(2, (hy_tensor *[]){pvb, vb}, 2);
  }
  hy_tensor *mask = cached_mask((mask_entry){.rule = WINDOW_MASK,
                                             .nb = nb,
                                             .W = W,
                                             .L = L,
                                             .P = P,
                                             .window = slide ? window : 0,
                                             .dtype = q->dtype,
                                             .device = q->device});
  return hy_titans_block_attention(qb, keys, values, mask, scale, B, T);
}

/* ---- sequence parallelism: the keys and values of the window before this rank's slice ---- */

/* The positions before `at` that a query at `at` or later sees: the last window - 1 (all of them
 * with window 0). */
static int64_t seen_before(int64_t window, int64_t at) {
  return window > 0 && window - 1 < at ? window - 1 : at;
}

/* k, v [B, T, H, D] of this rank's slice with the keys and values of the *p positions before it
 * in front, *p = seen_before(window, offset): rank r - 1 hands them on (from its own rows and
 * what it was handed), and this rank hands on the last seen_before(window, offset + T) of its
 * own. Only the window travels, not every earlier rank's keys (LASP-2H); with a window longer
 * than a slice it comes from several ranks, one hand-on after another. */
static void with_window_before(int64_t window, hy_tensor **k, hy_tensor **v, int64_t *p) {
  const hy_sequence *seq = hy_sequence_get();
  int W = hy_group_size(seq->group), r = hy_group_rank(seq->group);
  int64_t B = (*k)->shape[0], T = (*k)->shape[1], H = (*k)->shape[2], D = (*k)->shape[3];
  *p = seen_before(window, seq->offset);
  if (*p > 0) { /* keys and values side by side: [B, p, H, 2 D] */
    hy_shape s = HY_SHAPE(B, *p, H, 2 * D);
    hy_tensor *before = hy_dist_recv(seq->group, r - 1, (*k)->device, (*k)->dtype, s);
    *k = hy_concat(2, (hy_tensor *[]){hy_slice(before, 3, 0, D), *k}, 1);
    *v = hy_concat(2, (hy_tensor *[]){hy_slice(before, 3, D, 2 * D), *v}, 1);
  }
  int64_t n = seen_before(window, seq->offset + T), end = *p + T; /* n: the next rank's *p */
  if (r + 1 < W && n > 0) {
    hy_tensor *tail[2] = {hy_slice(*k, 1, end - n, end), hy_slice(*v, 1, end - n, end)};
    *k = hy_dist_send(seq->group, r + 1, hy_concat(2, tail, 3), *k);
  }
}

/* hy_titans_window_attention of queries q at positions p .. p + T - 1 of k and v. Without
 * persistent tokens the fused op takes the offset; with them, p zero query rows go in front and
 * their rows are dropped: exact (a row sees only keys; the zero rows get no gradient), at the
 * price of p < window rows more. */
static hy_tensor *window_attention(const hy_titans_layer *l, hy_tensor *q, hy_tensor *k,
                                   hy_tensor *v, int64_t p) {
  double scale = 1.0 / sqrt((double)l->attn.head_dim);
  int64_t window = l->attn.window, B = q->shape[0], T = q->shape[1];
  if (p == 0) return hy_titans_window_attention(q, k, v, l->pk, l->pv, scale, window);
  if (!l->pk) return hy_attention_offset(q, k, v, scale, window, p);
  hy_tensor *front = hy_zeros(q->dtype, HY_SHAPE(B, p, q->shape[2], q->shape[3]));
  q = hy_concat(2, (hy_tensor *[]){front, q}, 1);
  return hy_slice(hy_titans_window_attention(q, k, v, l->pk, l->pv, scale, window), 1, p, p + T);
}

/* ---- the layer ---- */

static hy_tensor *attend(const hy_titans_layer *l, hy_tensor *x) {
  hy_tensor *q, *k, *v;
  hy_attention_qkv(&l->attn, x, &q, &k, &v); /* RoPE at this slice's global positions */
  int64_t p = 0;
  if (hy_sequence_parallel()) with_window_before(l->attn.window, &k, &v, &p);
  return hy_attention_out(&l->attn, x, window_attention(l, q, k, v, p));
}

/* MAG: RMSNorm(a; g_a) * sigmoid(RMSNorm(m; g_m)). */
static hy_tensor *combine(const hy_titans_layer *l, hy_tensor *a, hy_tensor *m) {
  return hy_mul(hy_rmsnorm(a, l->attn_norm, l->norm_eps),
                hy_sigmoid(hy_rmsnorm(m, l->mem_norm, l->norm_eps)));
}

/* Under sequence parallelism MAG attends first: its keys and values go on to the next rank
 * before this rank's memory waits for the previous rank's. */
hy_tensor *hy_titans_forward(const hy_titans_layer *l, hy_tensor *x) {
  if (!l->gate) return attend(l, hy_titans_memory_forward(&l->mem, x));
  hy_tensor *a = attend(l, x);
  return combine(l, a, hy_titans_memory_forward(&l->mem, x));
}

static hy_tensor *titans_forward(void *self, hy_tensor *x) { return hy_titans_forward(self, x); }

static void *mal_create(hy_params *ps, const char *prefix, const hy_model_config *cfg, int layer,
                        hy_rng *rng) {
  (void)layer;
  return hy_titans_new(ps, prefix, cfg, hy_titans_config_of(cfg), false, rng);
}

static void *mag_create(hy_params *ps, const char *prefix, const hy_model_config *cfg, int layer,
                        hy_rng *rng) {
  (void)layer;
  return hy_titans_new(ps, prefix, cfg, hy_titans_config_of(cfg), true, rng);
}

/* ---- decoding: the memory's state and a ring of the last `window` keys and values ---- */

typedef struct {
  void *mem;
  hy_tensor *k, *v; /* persistent [B, slots, H, D]: rotated keys and values, slot = pos % slots */
  int64_t slots;
} titans_state;

static void *titans_decode_new(void *self, int64_t batch, int64_t max_len) {
  hy_titans_layer *l = self;
  titans_state *st = calloc(1, sizeof *st);
  if (!st) hy_die("titans", "out of memory");
  st->mem = hy_titans_memory_state_new(&l->mem, batch);
  int64_t w = l->attn.window;
  st->slots = w > 0 && w < max_len ? w : max_len;
  hy_shape s = HY_SHAPE(batch, st->slots, l->attn.n_heads, l->attn.head_dim);
  st->k = hy_zeros_persistent(l->attn.q.weight->dtype, s);
  st->v = hy_zeros_persistent(l->attn.q.weight->dtype, s);
  return st;
}

hy_tensor *hy_titans_heads(const hy_attention_layer *a, const hy_linear *proj, hy_tensor *x) {
  return hy_reshape(hy_linear_forward(proj, x),
                    HY_SHAPE(x->shape[0], x->shape[1], a->n_heads, a->head_dim));
}

hy_tensor *hy_titans_attend_one(const hy_titans_layer *l, hy_tensor *q, hy_tensor *keys,
                                hy_tensor *values) {
  const hy_attention_layer *a = &l->attn;
  int64_t B = q->shape[0];
  if (l->pk) {
    hy_shape s = HY_SHAPE(B, l->pk->shape[0], a->n_heads, a->head_dim);
    keys = hy_concat(2, (hy_tensor *[]){hy_add(hy_zeros(q->dtype, s), l->pk), keys}, 1);
    values = hy_concat(2, (hy_tensor *[]){hy_add(hy_zeros(q->dtype, s), l->pv), values}, 1);
  }
  hy_tensor *kh = hy_transpose(keys, 1, 2), *vh = hy_transpose(values, 1, 2);
  hy_tensor *s = hy_matmul(hy_transpose(q, 1, 2), hy_transpose(kh, 2, 3));
  hy_tensor *p = hy_softmax(hy_scale(s, 1.0 / sqrt((double)a->head_dim)));
  hy_tensor *o = hy_contiguous(hy_transpose(hy_matmul(p, vh), 1, 2)); /* [B, 1, H, D] */
  return hy_linear_forward(&a->o, hy_reshape(o, HY_SHAPE(B, 1, a->n_heads * a->head_dim)));
}

static hy_tensor *attend_step(const hy_titans_layer *l, titans_state *st, hy_tensor *x,
                              int64_t pos) {
  const hy_attention_layer *a = &l->attn;
  int64_t slot = pos % st->slots, n = pos + 1 < st->slots ? pos + 1 : st->slots;
  hy_tensor *q = hy_rope(hy_titans_heads(a, &a->q, x), pos, a->rope_theta);
  hy_copy_into(hy_slice(st->k, 1, slot, slot + 1),
               hy_rope(hy_titans_heads(a, &a->k, x), pos, a->rope_theta));
  hy_copy_into(hy_slice(st->v, 1, slot, slot + 1), hy_titans_heads(a, &a->v, x));
  /* The keys in the ring are all in the window (their order does not matter to a softmax). */
  return hy_titans_attend_one(l, q, hy_slice(st->k, 1, 0, n), hy_slice(st->v, 1, 0, n));
}

static hy_tensor *titans_decode_step(void *self, void *state, hy_tensor *x, int64_t pos) {
  hy_titans_layer *l = self;
  titans_state *st = state;
  hy_tensor *m = hy_titans_memory_step(&l->mem, st->mem, x);
  if (!l->gate) return attend_step(l, st, m, pos);
  return combine(l, attend_step(l, st, x, pos), m);
}

static void titans_decode_free(void *state) {
  titans_state *st = state;
  if (!st) return;
  hy_titans_memory_state_free(st->mem);
  hy_free(st->k);
  hy_free(st->v);
  free(st);
}

const hy_mixer_kind hy_mixer_titans_mal = {
    "titans_mal",      mal_create,         titans_forward,     free,
    titans_decode_new, titans_decode_step, titans_decode_free, true};
const hy_mixer_kind hy_mixer_titans_mag = {
    "titans_mag",      mag_create,         titans_forward,     free,
    titans_decode_new, titans_decode_step, titans_decode_free, true};
