/* The softmax-family variant layers (sigmoid, softplus, sla): for each kind, the fused layer
 * against the naive layer (outputs and every gradient, f64), gradcheck of every parameter,
 * token-by-token decoding against the full forward, and flat memory per token when evaluating
 * at 4x and 16x the training length; for sla, its two limits (every block critical: softmax
 * attention; at init: block-sparse softmax attention); for softplus, the evaluation model's
 * re-weighting power. */
#include "layers/model.h"
#include "layers/sigmoid_attention.h"
#include "layers/sla.h"
#include "layers/softplus_attention.h"
#include "run/evaluate.h"
#include "tests/support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const KINDS[] = {"sigmoid", "softplus", "sla"};
enum { N_KINDS = 3, BLOCK = 4 };

TestSuite(softmax_variant_layers, .fini = t_params_fini);

/* d 12 in 3 heads of 4. Sigmoid: b = -log(16), output norm on. Softplus: trained at 8 tokens, so
 * c_t passes 1 inside the test's sequences, and p = 1.7. SLA: blocks of 4 with 30% critical and
 * 25% negligible, so that from the fourth query block on there are blocks of all three classes. */
static hy_model_config config(bool naive) {
  hy_model_config c = hy_model_config_default();
  c.dtype = HY_F64;
  c.d_model = 12;
  c.n_heads = 3;
  c.n_layers = 4;
  c.init_std = 0.4; /* scores of order 1: sigmoids and softpluses away from their linear parts */
  c.sigmoid.seq_len = 16;
  c.sigmoid.naive = naive;
  c.softplus.train_len = 8;
  c.softplus.power = 1.7;
  c.softplus.naive = naive;
  c.sla.block = BLOCK;
  c.sla.critical = 0.3;
  c.sla.negligible = 0.25;
  c.sla.naive = naive;
  return c;
}

typedef struct {
  const hy_mixer_kind *kind;
  void *layer;
} mixer;

static mixer make_with(const char *name, const hy_model_config *cfg, uint64_t seed) {
  hy_rng rng = hy_rng_new(seed);
  mixer m = {hy_mixer_find(name), NULL};
  cr_assert(m.kind, "%s is not a mixer kind", name);
  m.layer = m.kind->create(&t_params, "mixer", cfg, 0, &rng);
  return m;
}

/* A layer whose gains, biases and proj_l are moved off their initial values (ones and zeros), so
 * that every parameter's gradient matters; the same seed gives the same parameters. */
static mixer make(const char *name, bool naive, uint64_t seed) {
  hy_model_config cfg = config(naive);
  mixer m = make_with(name, &cfg, seed);
  hy_rng rng = hy_rng_new(seed + 100);
  for (int i = 0; i < t_params.n; i++) {
    const char *p = t_params.items[i].name;
    if (strstr(p, "norm")) hy_fill_normal(t_params.items[i].t, &rng, 1.0, 0.3);
    if (strstr(p, "proj_l")) hy_fill_normal(t_params.items[i].t, &rng, 0.0, 0.4);
  }
  return m;
}

static void drop(mixer m) {
  m.kind->destroy(m.layer);
  hy_params_free(&t_params);
}

/* The input gradient, then every parameter's gradient, copied out. */
static int grads_of(hy_tensor *x, hy_tensor **out) {
  int n = 0;
  out[n++] = x->grad;
  for (int i = 0; i < t_params.n; i++) {
    hy_tensor *g = t_params.items[i].t->grad;
    cr_assert(g, "'%s' got no gradient", t_params.items[i].name);
    out[n] = hy_empty_like(g);
    hy_copy_into(out[n++], g);
  }
  return n;
}

/* T = 23: five whole SLA blocks of 4 and a partial one. */
Test(softmax_variant_layers, fused_layer_equals_naive_layer) {
  for (int k = 0; k < N_KINDS; k++) {
    hy_tensor *x = t_param(t_randn(HY_F64, HY_SHAPE(2, 23, 12), 4));
    hy_tensor *gy = t_randn(HY_F64, HY_SHAPE(2, 23, 12), 5);
    hy_tensor *y[2], *grads[2][32];
    int n[2];
    for (int naive = 0; naive < 2; naive++) {
      mixer m = make(KINDS[k], naive, 3);
      x->grad = NULL;
      y[naive] = m.kind->forward(m.layer, x);
      hy_backward_with(y[naive], gy);
      n[naive] = grads_of(x, grads[naive]);
      drop(m);
    }
    cr_assert_eq(n[0], n[1]);
    char what[64];
    snprintf(what, sizeof what, "%s output", KINDS[k]);
    t_expect_close(y[0], y[1], 1e-10, what);
    for (int i = 0; i < n[0]; i++) {
      snprintf(what, sizeof what, "%s gradient %d (0: x)", KINDS[k], i);
      t_expect_close(grads[0][i], grads[1][i], 1e-10, what);
    }
    hy_step_reset();
  }
}

static hy_tensor *layer_fn(hy_tensor **in, void *ctx) {
  mixer *m = ctx;
  return m->kind->forward(m->layer, in[0]);
}

/* T = 13: four SLA query blocks, the last partial, with marginal blocks from the third on. */
Test(softmax_variant_layers, every_parameter_gradchecks) {
  for (int k = 0; k < N_KINDS; k++) {
    mixer m = make(KINDS[k], false, 1);
    hy_tensor *inputs[32];
    int n = 0;
    inputs[n++] = t_param(t_randn(HY_F64, HY_SHAPE(2, 13, 12), 2));
    for (int i = 0; i < t_params.n; i++) inputs[n++] = t_params.items[i].t;
    char what[64];
    snprintf(what, sizeof what, "%s layer", KINDS[k]);
    t_expect_gradcheck(layer_fn, &m, n, inputs, what);
    drop(m);
    hy_step_reset();
  }
}

/* One token at a time through the decoder against the full forward of a model, on every row.
 * SLA's proj_l (zero at init) is drawn first, so that its linear branch reaches the output. */
static double decoding_error(hy_model_config cfg, int64_t T) {
  cfg.vocab = 13;
  hy_model *m = hy_model_new(&cfg, 5);
  hy_rng prng = hy_rng_new(7);
  for (int i = 0; i < m->params.n; i++)
    if (strstr(m->params.items[i].name, "proj_l"))
      hy_fill_normal(m->params.items[i].t, &prng, 0.0, 0.4);
  enum { B = 2 };
  hy_tensor *tokens = hy_empty(HY_I32, HY_SHAPE(B, T));
  hy_rng rng = hy_rng_new(6);
  hy_fill_int(tokens, &rng, 0, 13);
  double worst = t_decoding_error(m, tokens);
  hy_model_free(m);
  hy_step_reset();
  return worst;
}

static void set_layers(hy_model_config *cfg, int n, const char *const *kinds) {
  cfg->n_layers = n;
  for (int l = 0; l < n; l++) snprintf(cfg->layers[l], HY_KIND_NAME_MAX, "%s", kinds[l]);
}

/* How many of SLA's (query block, key block) pairs over T tokens are of class `cls` (the counts
 * depend on the config, not on the data). */
static int64_t sla_pairs_of_class(const hy_model_config *cfg, int64_t T, int cls) {
  hy_tensor *x = t_randn(HY_F64, HY_SHAPE(1, T, 1, 4), 1);
  hy_tensor *c = hy_sla_select(x, x, cfg->sla.block, cfg->sla.critical, cfg->sla.negligible, NULL);
  int64_t n = 0;
  for (int64_t i = 0; i < hy_numel(c); i++) n += ((const int32_t *)c->data)[i] == cls;
  return n;
}

/* SLA between and after other kinds, over 5 blocks of 4 (the last of one token): 4 marginal
 * and 1 negligible (query block 4: 2 critical, 1 marginal, 1 negligible of 4). */
Test(softmax_variant_layers, hybrid_decoding_matches_forward) {
  hy_model_config cfg = config(false);
  set_layers(&cfg, 4, (const char *const[]){"sigmoid", "softplus", "sla", "attn"});
  cr_assert(sla_pairs_of_class(&cfg, 17, HY_SLA_MARGINAL) == 4 &&
            sla_pairs_of_class(&cfg, 17, HY_SLA_NEGLIGIBLE) == 1);
  double e = decoding_error(cfg, 17);
  cr_log_info("decoding vs forward: %.3g", e);
  cr_assert(e <= 1e-10, "decoding vs forward: %.3g", e);
}

/* SLA's block selection is causal (query block i ranks its earlier key blocks with the mean of
 * query block i - 1), so decoding, which has only the tokens up to t, equals the full forward on
 * EVERY row, mid-block ones included, with marginal and negligible blocks: 7 blocks of 4, the
 * last partial (per head 9 marginal and 3 negligible pairs: query blocks 2 to 6 have 1, 2, 1, 2,
 * 3 marginal and 0, 0, 1, 1, 1 negligible), in two SLA layers (the second reads the first's
 * outputs of every row). */
Test(softmax_variant_layers, sla_decoding_matches_forward) {
  hy_model_config cfg = config(false);
  set_layers(&cfg, 4, (const char *const[]){"sigmoid", "sla", "softplus", "sla"});
  int64_t T = 6 * BLOCK + 2;
  cr_assert(sla_pairs_of_class(&cfg, T, HY_SLA_MARGINAL) == 9 &&
            sla_pairs_of_class(&cfg, T, HY_SLA_NEGLIGIBLE) == 3);
  double e = decoding_error(cfg, T);
  cr_log_info("decoding vs forward on every row: %.3g", e);
  cr_assert(e <= 1e-10, "decoding vs forward on every row: %.3g", e);
}

/* Critical fraction 1: every earlier block is exact, none is marginal (o_l = 0), so the SLA
 * layer is the softmax layer with the same q, k, v, o weights whatever proj_l's weight is. */
Test(softmax_variant_layers, sla_all_critical_is_softmax_attention) {
  hy_model_config cfg = config(false);
  cfg.sla.critical = 1.0;
  hy_tensor *x = t_param(t_randn(HY_F64, HY_SHAPE(2, 23, 12), 8));
  hy_tensor *gy = t_randn(HY_F64, HY_SHAPE(2, 23, 12), 9);
  hy_tensor *y[2], *grads[2][32];
  const char *kinds[2] = {"sla", "attn"};
  for (int i = 0; i < 2; i++) {
    mixer m = make_with(kinds[i], &cfg, 11); /* q, k, v, o are drawn first: the same weights */
    if (i == 0) {
      hy_sla_layer *l = m.layer;
      hy_rng rng = hy_rng_new(12);
      hy_fill_normal(l->proj_l.weight, &rng, 0.0, 0.4);
    }
    x->grad = NULL;
    y[i] = m.kind->forward(m.layer, x);
    hy_backward_with(y[i], gy);
    grads_of(x, grads[i]); /* x, then q, k, v, o (and sla's proj_l) */
    drop(m);
  }
  t_expect_close(y[0], y[1], 1e-12, "sla (critical 1) vs attn: output");
  const char *names[] = {"x", "q_proj", "k_proj", "v_proj", "o_proj"};
  for (int i = 0; i < 5; i++) {
    char what[64];
    snprintf(what, sizeof what, "sla (critical 1) vs attn: gradient of %s", names[i]);
    t_expect_close(grads[0][i], grads[1][i], 1e-12, what);
  }
}

/* Softmax over the critical blocks' keys only (causal inside the diagonal block), from plain ops.
 */
static hy_tensor *block_sparse_attention(hy_tensor *q, hy_tensor *k, hy_tensor *v,
                                         const hy_tensor *classes, int64_t block) {
  int64_t B = q->shape[0], T = q->shape[1], H = q->shape[2], D = q->shape[3];
  int64_t nb = classes->shape[2];
  hy_tensor *mask = hy_empty(q->dtype, HY_SHAPE(B, H, T, T));
  for (int64_t bh = 0; bh < B * H; bh++)
    for (int64_t t = 0; t < T; t++)
      for (int64_t s = 0; s < T; s++) {
        int32_t c = ((const int32_t *)classes->data)[(bh * nb + t / block) * nb + s / block];
        hy_set(mask, (bh * T + t) * T + s, c == HY_SLA_CRITICAL && s <= t ? 0.0 : -INFINITY);
      }
  hy_tensor *qh = hy_transpose(q, 1, 2), *kh = hy_transpose(k, 1, 2), *vh = hy_transpose(v, 1, 2);
  hy_tensor *s = hy_scale(hy_matmul(qh, hy_transpose(kh, 2, 3)), 1.0 / sqrt((double)D));
  hy_tensor *p = hy_softmax(hy_add(s, mask));
  return hy_contiguous(hy_transpose(hy_matmul(p, vh), 1, 2));
}

/* At init proj_l is zero: the linear branch is computed but adds nothing, and the layer is
 * block-sparse softmax attention over hy_sla_select's critical blocks. */
Test(softmax_variant_layers, sla_at_init_is_block_sparse_softmax_attention) {
  hy_model_config cfg = config(false);
  mixer m = make_with("sla", &cfg, 13);
  hy_sla_layer *l = m.layer;
  hy_tensor *x = t_param(t_randn(HY_F64, HY_SHAPE(2, 23, 12), 14));
  hy_tensor *gy = t_randn(HY_F64, HY_SHAPE(2, 23, 12), 15);
  hy_tensor *y[2], *grads[2][32];

  hy_tensor *y0 = m.kind->forward(m.layer, x);
  hy_backward_with(y0, gy);
  y[0] = y0;
  grads_of(x, grads[0]);
  hy_params_zero_grad(&t_params);
  x->grad = NULL;

  hy_tensor *q, *k, *v;
  hy_attention_qkv(&l->attn, x, &q, &k, &v);
  hy_sla_stats stats;
  hy_tensor *classes = hy_sla_select(q, k, BLOCK, cfg.sla.critical, cfg.sla.negligible, &stats);
  cr_assert(stats.marginal > 0.1 && stats.exact < 0.9, "a selection with marginal blocks: %g, %g",
            stats.exact, stats.marginal);
  y[1] = hy_attention_out(&l->attn, x, block_sparse_attention(q, k, v, classes, BLOCK));
  hy_backward_with(y[1], gy);
  grads_of(x, grads[1]);

  t_expect_close(y[0], y[1], 1e-12, "sla at init vs block-sparse softmax: output");
  const char *names[] = {"x", "q_proj", "k_proj", "v_proj", "o_proj"};
  for (int i = 0; i < 5; i++) {
    char what[80];
    snprintf(what, sizeof what, "sla at init vs block-sparse softmax: gradient of %s", names[i]);
    t_expect_close(grads[0][i], grads[1][i], 1e-12, what);
  }
  drop(m);
}

/* `hyla eval` builds its model with hy_eval_model_config: softplus layers take eval_power and
 * keep the training length; the sigmoid bias keeps its training n. */
Test(softmax_variant_layers, evaluation_model_reweights_softplus) {
  hy_model_config cfg = config(false);
  cfg.softplus.train_len = 256;
  cfg.softplus.power = 1.0;
  cfg.softplus.eval_power = 2.5;
  cfg.sigmoid.seq_len = 256;
  set_layers(&cfg, 2, (const char *const[]){"softplus", "sigmoid"});
  hy_model_config eval = hy_eval_model_config(&cfg);
  hy_model *m = hy_model_new(&eval, 1);
  const hy_softplus_attention_layer *sp = m->blocks[0].mixer;
  const hy_sigmoid_attention_layer *sg = m->blocks[1].mixer;
  cr_assert_float_eq(sp->power, 2.5, 0, "evaluation power %g", sp->power);
  cr_assert_eq(sp->train_len, 256, "evaluation train_len %lld", (long long)sp->train_len);
  cr_assert_float_eq(sg->bias, -log(256.0), 1e-15, "evaluation sigmoid bias %g", sg->bias);
  hy_model_free(m);
  hy_model *t = hy_model_new(&cfg, 1);
  const hy_softplus_attention_layer *tp = t->blocks[0].mixer;
  cr_assert_float_eq(tp->power, 1.0, 0, "training power %g", tp->power);
  hy_model_free(t);
}

/* Evaluation at 4x and 16x the training length (64) without gradients: the step memory per
 * token stays flat, within 25% (as for the other kinds), for [kind, attn] hybrids. The per-token
 * activations are the same at every length; what grows is SLA's block map (i32, B H nb^2 with
 * nb = T / 16), 4 H T / 256 bytes per token: 64 at T = 1024, about 2% of the measured ~3.4 KiB.
 * A T x T score matrix would be 4x more per token at 16x than at 4x. */
Test(softmax_variant_layers, long_evaluation_memory_is_flat_per_token) {
  for (int k = 0; k < N_KINDS; k++) {
    hy_model_config cfg = hy_model_config_default();
    cfg.vocab = 64;
    cfg.d_model = 32;
    cfg.n_heads = 4;
    cfg.mlp_hidden = 64;
    cfg.sigmoid.seq_len = cfg.softplus.train_len = 64; /* "trained" at 64 */
    cfg.sla.block = 16;
    set_layers(&cfg, 2, (const char *const[]){KINDS[k], "attn"});
    hy_model *m = hy_model_new(&cfg, 3);
    double per_token[2];
    int64_t lengths[2] = {4 * 64, 16 * 64};
    for (int i = 0; i < 2; i++) per_token[i] = t_forward_bytes_per_token(m, lengths[i]);
    cr_log_info("%s: %.0f then %.0f bytes per token", KINDS[k], per_token[0], per_token[1]);
    cr_assert(per_token[1] <= 1.25 * per_token[0], "%s: %.0f then %.0f bytes per token", KINDS[k],
              per_token[0], per_token[1]);
    hy_model_free(m);
  }
}
