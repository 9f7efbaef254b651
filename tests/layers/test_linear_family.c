/* The linear-attention family (gla, lightning, linear): for each kind, gradcheck of every
 * parameter, the chunked op against the step-by-step recurrence at the layer level (outputs and
 * all gradients), and token-by-token decoding against the full forward in a hybrid model. */
#include "layers/lightning.h"
#include "layers/model.h"
#include "tests/support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const KINDS[] = {"gla", "lightning", "linear"};
enum { N_KINDS = 3 };

TestSuite(linear_family, .fini = t_params_fini);

static hy_model_config config(bool recurrent) {
  hy_model_config c = hy_model_config_default();
  c.dtype = HY_F64;
  c.d_model = 12;
  c.n_heads = 3;
  c.n_layers = 4;
  c.init_std = 0.4; /* large enough that gates and norms are far from their linear regime */
  c.gla.gate_rank = 3;
  c.gla.chunk = c.lightning.chunk = c.linear.chunk = 4;
  c.gla.recurrent = c.lightning.recurrent = c.linear.recurrent = recurrent;
  return c;
}

typedef struct {
  const hy_mixer_kind *kind;
  void *layer;
} mixer;

/* Layer 1 of 4, so lightning's decay depends on the layer index. */
static mixer make(const char *name, bool recurrent, uint64_t seed) {
  hy_model_config cfg = config(recurrent);
  hy_rng rng = hy_rng_new(seed);
  mixer m = {hy_mixer_find(name), NULL};
  cr_assert(m.kind, "%s is not a mixer kind", name);
  m.layer = m.kind->create(&t_params, "mixer", &cfg, 1, &rng);
  /* Move the gains and the gate bias off their initial values so their gradients matter. */
  for (int i = 0; i < t_params.n; i++)
    if (strstr(t_params.items[i].name, "norm") || strstr(t_params.items[i].name, "bias"))
      hy_fill_normal(t_params.items[i].t, &rng, 1.0, 0.3);
  return m;
}

static hy_tensor *layer_fn(hy_tensor **in, void *ctx) {
  mixer *m = ctx;
  return m->kind->forward(m->layer, in[0]);
}

Test(linear_family, every_parameter_gradchecks) {
  for (int k = 0; k < N_KINDS; k++)
    for (int recurrent = 0; recurrent < 2; recurrent++) {
      mixer m = make(KINDS[k], recurrent, 1);
      hy_tensor *inputs[32];
      int n = 0;
      inputs[n++] = t_param(t_randn(HY_F64, HY_SHAPE(2, 9, 12), 2));
      for (int i = 0; i < t_params.n; i++) inputs[n++] = t_params.items[i].t;
      bool ok = hy_gradcheck(layer_fn, &m, n, inputs, NULL);
      cr_assert(ok, "%s (%s): worst %.3g", KINDS[k], recurrent ? "recurrent" : "chunked",
                hy_gradcheck_last_error());
      m.kind->destroy(m.layer);
      hy_params_free(&t_params);
      hy_step_reset();
    }
}

/* Parameters and input gradients of one layer, copied out. */
static void grads_of(hy_tensor *x, hy_tensor **out, int *n) {
  *n = 0;
  out[(*n)++] = x->grad;
  for (int i = 0; i < t_params.n; i++) {
    hy_tensor *g = t_params.items[i].t->grad;
    out[*n] = hy_empty_like(g);
    hy_copy_into(out[(*n)++], g);
  }
}

Test(linear_family, chunked_layer_equals_recurrent_layer) {
  for (int k = 0; k < N_KINDS; k++) {
    hy_tensor *x = t_param(t_randn(HY_F64, HY_SHAPE(2, 23, 12), 4));
    hy_tensor *gy = t_randn(HY_F64, HY_SHAPE(2, 23, 12), 5);
    hy_tensor *y[2], *grads[2][32];
    int n = 0;
    for (int recurrent = 0; recurrent < 2; recurrent++) {
      mixer m = make(KINDS[k], recurrent, 3); /* same seed: the same parameters */
      x->grad = NULL;
      y[recurrent] = m.kind->forward(m.layer, x);
      hy_backward_with(y[recurrent], gy);
      grads_of(x, grads[recurrent], &n);
      m.kind->destroy(m.layer);
      hy_params_free(&t_params);
    }
    char what[64];
    snprintf(what, sizeof what, "%s output", KINDS[k]);
    t_expect_close(y[0], y[1], 1e-10, what);
    for (int i = 0; i < n; i++) {
      snprintf(what, sizeof what, "%s gradient %d", KINDS[k], i);
      t_expect_close(grads[0][i], grads[1][i], 1e-10, what);
    }
    hy_step_reset();
  }
}

/* A hybrid of every kind: one token at a time through the decoder equals the full forward. */
Test(linear_family, hybrid_decoding_matches_forward) {
  hy_model_config cfg = config(false);
  cfg.vocab = 13;
  const char *pattern[] = {"gla", "attn", "lightning", "linear"};
  for (int l = 0; l < 4; l++) snprintf(cfg.layers[l], HY_KIND_NAME_MAX, "%s", pattern[l]);
  hy_model *m = hy_model_new(&cfg, 5);
  enum { B = 2, T = 11 };
  hy_tensor *tokens = hy_empty(HY_I32, HY_SHAPE(B, T));
  hy_rng rng = hy_rng_new(6);
  hy_fill_int(tokens, &rng, 0, 13);
  double worst = t_decoding_error(m, tokens);
  cr_assert(worst <= 1e-10, "decoding vs forward: %.3g", worst);
  hy_model_free(m);
}

/* Lightning's decay, log lambda_h = -(8 / H)(1 - l / L) h: head 0 does not decay, and deeper
 * layers decay less. */
Test(linear_family, lightning_decay_rates) {
  hy_model_config cfg = config(false); /* H = 3, L = 4 */
  hy_rng rng = hy_rng_new(1);
  hy_lightning_layer *first = hy_mixer_lightning.create(&t_params, "a", &cfg, 0, &rng);
  hy_lightning_layer *last = hy_mixer_lightning.create(&t_params, "b", &cfg, 3, &rng);
  double want0[] = {0, -8.0 / 3, -16.0 / 3}, want3[] = {0, -2.0 / 3, -4.0 / 3};
  for (int h = 0; h < 3; h++) {
    cr_assert_float_eq(first->log_decay[h], want0[h], 1e-15);
    cr_assert_float_eq(last->log_decay[h], want3[h], 1e-15);
  }
  hy_mixer_lightning.destroy(first);
  hy_mixer_lightning.destroy(last);
}

static hy_model_config hybrid(hy_dtype dtype, const char *first, const char *second) {
  hy_model_config cfg = config(false);
  cfg.dtype = dtype;
  cfg.vocab = 11;
  cfg.n_layers = 2;
  cfg.mlp_hidden = 16;
  snprintf(cfg.layers[0], HY_KIND_NAME_MAX, "%s", first);
  snprintf(cfg.layers[1], HY_KIND_NAME_MAX, "%s", second);
  return cfg;
}

/* 2-layer hybrids (each linear kind with softmax attention): gradcheck of every parameter. */
Test(linear_family, hybrid_model_gradchecks_every_parameter) {
  for (int k = 0; k < N_KINDS; k++) {
    hy_model_config cfg = hybrid(HY_F64, KINDS[k], "attn");
    cfg.init_std = 0.3;
    hy_model *m = hy_model_new(&cfg, 7);
    hy_rng rng = hy_rng_new(12);
    hy_tensor *tokens = hy_empty(HY_I32, HY_SHAPE(2, 7)),
              *targets = hy_empty(HY_I32, HY_SHAPE(2, 7));
    hy_fill_int(tokens, &rng, 0, 11);
    hy_fill_int(targets, &rng, 0, 11);
    bool ok = t_model_gradcheck(m, tokens, targets);
    cr_assert(ok, "%s + attn: worst %.3g", KINDS[k], hy_gradcheck_last_error());
    hy_model_free(m);
    hy_step_reset();
  }
}

/* A [gla, attn] model memorizes one batch: from about log(64) to below 0.05 within 200 steps. */
Test(linear_family, hybrid_model_overfits_one_batch) { t_expect_hybrid_overfits("gla", 200); }

/* Evaluation at 4x and 16x the length a model would train at: the step memory per token stays
 * flat (within 25%) for hybrids of every linear kind with softmax attention. */
Test(linear_family, long_evaluation_memory_is_flat_per_token) {
  for (int k = 0; k < N_KINDS; k++) {
    hy_model_config cfg = hybrid(HY_F32, KINDS[k], "attn");
    cfg.vocab = 64;
    cfg.d_model = 32;
    cfg.n_heads = 4;
    hy_model *m = hy_model_new(&cfg, 3);
    double per_token[2];
    int64_t lengths[2] = {4 * 64, 16 * 64}; /* "trained" at 64 */
    for (int i = 0; i < 2; i++) per_token[i] = t_forward_bytes_per_token(m, lengths[i]);
    cr_assert(per_token[1] <= 1.25 * per_token[0], "%s: %.0f then %.0f bytes per token", KINDS[k],
              per_token[0], per_token[1]);
    hy_model_free(m);
  }
}
