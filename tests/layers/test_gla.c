/* The GLA layer: gradcheck of every parameter (gate projections included), the fused op against
 * the recurrence at the layer level, and decoding against the full forward in a hybrid model. */
#include "layers/gla.h"
#include "layers/model.h"
#include "tests/support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static hy_params ps;
static void fini(void) {
  hy_params_free(&ps);
  hy_step_reset();
}
TestSuite(gla, .fini = fini);

static hy_model_config config(void) {
  hy_model_config c = hy_model_config_default();
  c.dtype = HY_F64;
  c.d_model = 12;
  c.n_heads = 2;
  c.init_std = 0.4; /* large enough that gates and norms are far from their linear regime */
  c.gla.gate_rank = 3;
  c.gla.chunk = 4;
  return c;
}

static hy_tensor *layer_fn(hy_tensor **in, void *layer) {
  return hy_gla_layer_forward(layer, in[0]);
}

static bool check_all(hy_gla_layer *l, hy_tensor *x) {
  hy_tensor *inputs[32];
  int n = 0;
  inputs[n++] = x;
  for (int i = 0; i < ps.n; i++) inputs[n++] = ps.items[i].t;
  return hy_gradcheck(layer_fn, l, n, inputs, NULL);
}

Test(gla, layer_gradchecks_every_parameter) {
  hy_model_config cfg = config();
  hy_rng rng = hy_rng_new(1);
  hy_gla_layer *l = hy_mixer_gla.create(&ps, "gla", &cfg, 0, &rng);
  cr_assert_eq(ps.n, 9); /* q k v, gate down, gate up + bias, output gate, o, norm */
  hy_fill_normal(hy_params_find(&ps, "gla/gk_proj/1/bias")->t, &rng, 0.0, 1.0);
  hy_fill_normal(l->norm_weight, &rng, 1.0, 0.3);
  hy_tensor *x = t_param(t_randn(HY_F64, HY_SHAPE(2, 9, 12), 2));
  cr_assert(check_all(l, x), "fused: worst %.3g", hy_gradcheck_last_error());
  l->recurrent = true;
  cr_assert(check_all(l, x), "recurrent: worst %.3g", hy_gradcheck_last_error());
  free(l);
}

Test(gla, fused_layer_equals_recurrent_layer) {
  hy_model_config cfg = config();
  hy_rng rng = hy_rng_new(3);
  hy_gla_layer *l = hy_mixer_gla.create(&ps, "gla", &cfg, 0, &rng);
  hy_tensor *x = t_param(t_randn(HY_F64, HY_SHAPE(2, 23, 12), 4));
  hy_tensor *gy = t_randn(HY_F64, HY_SHAPE(2, 23, 12), 5);
  hy_tensor *y1 = hy_gla_layer_forward(l, x);
  hy_backward_with(y1, gy);
  hy_tensor *grads[16];
  for (int i = 0; i < ps.n; i++) {
    grads[i] = hy_empty_like(ps.items[i].t->grad);
    hy_copy_into(grads[i], ps.items[i].t->grad);
    hy_fill(ps.items[i].t->grad, 0.0);
  }
  hy_tensor *gx = x->grad;
  x->grad = NULL;
  l->recurrent = true;
  hy_tensor *y2 = hy_gla_layer_forward(l, x);
  hy_backward_with(y2, gy);
  t_expect_close(y1, y2, 1e-10, "output");
  t_expect_close(gx, x->grad, 1e-10, "dx");
  for (int i = 0; i < ps.n; i++)
    t_expect_close(grads[i], ps.items[i].t->grad, 1e-10, ps.items[i].name);
  free(l);
}

/* A hybrid: one token at a time through the decoder equals the full forward. */
Test(gla, hybrid_decoding_matches_forward) {
  hy_model_config cfg = config();
  cfg.vocab = 13;
  cfg.n_layers = 3;
  snprintf(cfg.layers[0], HY_KIND_NAME_MAX, "gla");
  snprintf(cfg.layers[1], HY_KIND_NAME_MAX, "attn");
  snprintf(cfg.layers[2], HY_KIND_NAME_MAX, "gla");
  hy_model *m = hy_model_new(&cfg, 5);
  enum { B = 2, T = 11 };
  hy_tensor *tokens = hy_empty(HY_I32, HY_SHAPE(B, T));
  hy_rng rng = hy_rng_new(6);
  hy_fill_int(tokens, &rng, 0, 13);
  hy_no_grad_begin();
  hy_tensor *full = hy_model_forward(m, tokens);
  hy_decoder *d = hy_decoder_new(m, B, T);
  double worst = 0;
  for (int t = 0; t < T; t++) {
    hy_tensor *col = hy_contiguous(hy_slice(tokens, 1, t, t + 1));
    hy_tensor *logits = hy_decoder_step(m, d, col);
    for (int b = 0; b < B; b++)
      for (int v = 0; v < 13; v++) {
        double ref = hy_get(full, (b * T + t) * 13 + v), got = hy_get(logits, b * 13 + v);
        worst = fmax(worst, fabs(got - ref) / fmax(1e-3, fabs(ref)));
      }
  }
  hy_no_grad_end();
  cr_assert(worst <= 1e-10, "decoding vs forward: %.3g", worst);
  hy_decoder_free(m, d);
  hy_model_free(m);
}
