/* The first layers: Linear, Embedding, RMSNorm, SwiGLU and causal softmax attention with RoPE. */
#include "layers/attention.h"
#include "layers/embedding.h"
#include "layers/linear.h"
#include "layers/model.h"
#include "layers/rmsnorm.h"
#include "layers/swiglu.h"
#include "tests/support.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

TestSuite(layers, .fini = t_params_fini);

/* Check every parameter in t_params plus x (if it requires a gradient) through f. */
static bool check_all(hy_gradcheck_fn f, void *layer, hy_tensor *x) {
  hy_tensor *inputs[64];
  int n = 0;
  inputs[n++] = x;
  for (int i = 0; i < t_params.n; i++) inputs[n++] = t_params.items[i].t;
  return hy_gradcheck(f, layer, n, inputs, NULL);
}

static hy_tensor *linear_fn(hy_tensor **in, void *layer) { return hy_linear_forward(layer, in[0]); }

Test(layers, linear_matches_loop_and_gradchecks) {
  hy_rng rng = hy_rng_new(3);
  hy_linear l;
  hy_linear_init(&l, &t_params, "lin", 5, 7, true, HY_F64, &rng, 0.5);
  hy_fill_normal(l.bias, &rng, 0.0, 1.0);
  hy_tensor *x = t_param(t_randn(HY_F64, HY_SHAPE(2, 3, 5), 4));
  hy_tensor *y = hy_linear_forward(&l, x);
  hy_tensor *ref = hy_empty(HY_F64, HY_SHAPE(2, 3, 7));
  for (int r = 0; r < 6; r++)
    for (int o = 0; o < 7; o++) {
      double s = hy_get(l.bias, o);
      for (int i = 0; i < 5; i++) s += hy_get(x, r * 5 + i) * hy_get(l.weight, o * 5 + i);
      hy_set(ref, r * 7 + o, s);
    }
  t_expect_close(y, ref, 1e-13, "linear forward");
  cr_assert(hy_params_find(&t_params, "lin/weight") && hy_params_find(&t_params, "lin/bias"));
  cr_assert(check_all(linear_fn, &l, x), "linear gradcheck");
}

static hy_tensor *embedding_fn(hy_tensor **in, void *layer) {
  (void)in;
  hy_tensor *tokens = hy_empty(HY_I32, HY_SHAPE(2, 4));
  int32_t ids[] = {0, 3, 3, 9, 1, 0, 9, 2};
  for (int i = 0; i < 8; i++) hy_set(tokens, i, ids[i]);
  return hy_embedding_forward(layer, tokens);
}

Test(layers, embedding_gradchecks_with_repeated_ids) {
  hy_rng rng = hy_rng_new(5);
  hy_embedding_layer e;
  hy_embedding_init(&e, &t_params, "embed", 10, 6, HY_F64, &rng, 1.0);
  hy_tensor *dummy = hy_zeros(HY_F64, HY_SHAPE(1));
  cr_assert(check_all(embedding_fn, &e, dummy), "embedding gradcheck");
}

static hy_tensor *rmsnorm_fn(hy_tensor **in, void *layer) {
  return hy_rmsnorm_forward(layer, in[0]);
}

Test(layers, rmsnorm_gradchecks) {
  hy_rmsnorm_layer n;
  hy_rmsnorm_init(&n, &t_params, "norm", 9, 1e-6, HY_F64);
  hy_rng rng = hy_rng_new(6);
  hy_fill_normal(n.weight, &rng, 1.0, 0.3); /* a gain of all ones would hide a wrong gradient */
  hy_tensor *x = t_param(t_randn(HY_F64, HY_SHAPE(3, 5, 9), 7));
  cr_assert(check_all(rmsnorm_fn, &n, x), "rmsnorm gradcheck");
}

static hy_tensor *swiglu_fn(hy_tensor **in, void *layer) { return hy_swiglu_forward(layer, in[0]); }

Test(layers, swiglu_matches_formula_and_gradchecks) {
  hy_rng rng = hy_rng_new(8);
  hy_swiglu_layer m;
  hy_swiglu_init(&m, &t_params, "mlp", 6, 10, HY_F64, &rng, 0.5, 0.5);
  hy_tensor *x = t_param(t_randn(HY_F64, HY_SHAPE(2, 3, 6), 9));
  hy_tensor *y = hy_swiglu_forward(&m, x);
  for (int r = 0; r < 6; r++)
    for (int o = 0; o < 6; o++) {
      double s = 0;
      for (int h = 0; h < 10; h++) {
        double g = 0, u = 0;
        for (int i = 0; i < 6; i++) {
          g += hy_get(m.gate.weight, h * 6 + i) * hy_get(x, r * 6 + i);
          u += hy_get(m.up.weight, h * 6 + i) * hy_get(x, r * 6 + i);
        }
        s += hy_get(m.down.weight, o * 10 + h) * g / (1 + exp(-g)) * u;
      }
      cr_assert(fabs(hy_get(y, r * 6 + o) - s) <= 1e-13 * fmax(1, fabs(s)), "swiglu at %d,%d", r,
                o);
    }
  cr_assert(check_all(swiglu_fn, &m, x), "swiglu gradcheck");
  cr_assert_eq(hy_swiglu_default_hidden(64), 192);
  cr_assert_eq(hy_swiglu_default_hidden(100), 320);
}

static hy_model_config small_config(hy_dtype dtype) {
  hy_model_config c = hy_model_config_default();
  c.dtype = dtype;
  c.vocab = 11;
  c.d_model = 12;
  c.n_heads = 3;
  c.n_layers = 2;
  c.mlp_hidden = 16;
  return c;
}

static hy_tensor *attention_fn(hy_tensor **in, void *layer) {
  return hy_attention_layer_forward(layer, in[0]);
}

Test(layers, attention_layer_gradchecks_fused_and_naive) {
  hy_model_config cfg = small_config(HY_F64);
  cfg.init_std = 0.5; /* large enough weights that attention is far from uniform */
  hy_rng rng = hy_rng_new(10);
  hy_attention_layer *a = hy_mixer_attn.create(&t_params, "attn", &cfg, 0, &rng);
  hy_tensor *x = t_param(t_randn(HY_F64, HY_SHAPE(2, 7, 12), 11));
  cr_assert(check_all(attention_fn, a, x), "fused attention layer gradcheck");
  a->naive = true;
  cr_assert(check_all(attention_fn, a, x), "naive attention layer gradcheck");
  free(a);
}

/* The fused op and the naive form agree on outputs and on all three input gradients. */
static void fused_vs_naive(hy_dtype dtype, int64_t B, int64_t T, int64_t H, int64_t D, double tol,
                           int64_t window) {
  hy_tensor *q = t_param(t_randn(dtype, HY_SHAPE(B, T, H, D), 21));
  hy_tensor *k = t_param(t_randn(dtype, HY_SHAPE(B, T, H, D), 22));
  hy_tensor *v = t_param(t_randn(dtype, HY_SHAPE(B, T, H, D), 23));
  hy_tensor *go = t_randn(dtype, HY_SHAPE(B, T, H, D), 24);
  double scale = 1.0 / sqrt((double)D);
  hy_tensor *o1 = hy_attention_window(q, k, v, scale, window);
  hy_backward_with(o1, go);
  hy_tensor *g1[3] = {q->grad, k->grad, v->grad};
  q->grad = k->grad = v->grad = NULL;
  hy_tensor *o2 = hy_attention_naive_window(q, k, v, scale, window);
  hy_backward_with(o2, go);
  t_expect_close(o1, o2, tol, "attention output");
  t_expect_close(g1[2], v->grad, tol, "dv");
  if (T == 1 || window == 1) { /* one key per row: dq = dk = 0 up to rounding of O(1) terms */
    for (int64_t i = 0; i < hy_numel(q); i++) {
      cr_assert(fabs(hy_get(g1[0], i)) <= 1e-13 && fabs(hy_get(q->grad, i)) <= 1e-13);
      cr_assert(fabs(hy_get(g1[1], i)) <= 1e-13 && fabs(hy_get(k->grad, i)) <= 1e-13);
    }
    return;
  }
  t_expect_close(g1[0], q->grad, tol, "dq");
  t_expect_close(g1[1], k->grad, tol, "dk");
}

Test(layers, fused_attention_equals_naive) {
  fused_vs_naive(HY_F64, 2, 37, 3, 8, 1e-12, 0);
  fused_vs_naive(HY_F64, 1, 1, 1, 2, 1e-12, 0);
  fused_vs_naive(HY_F64, 3, 64, 2, 16, 1e-12, 0);
  fused_vs_naive(HY_F32, 2, 129, 4, 16, 1e-5, 0);
}

/* Sliding windows: of one token, smaller than a tile, across tiles, and longer than T. */
Test(layers, sliding_window_attention_equals_naive) {
  int64_t windows[] = {1, 5, 64, 70, 1000};
  for (int i = 0; i < 5; i++) fused_vs_naive(HY_F64, 2, 150, 2, 8, 1e-12, windows[i]);
  fused_vs_naive(HY_F32, 1, 200, 2, 16, 1e-5, 33);
}

static hy_tensor *tokens_of(const int32_t *ids, int64_t B, int64_t T) {
  hy_tensor *t = hy_empty(HY_I32, HY_SHAPE(B, T));
  for (int64_t i = 0; i < B * T; i++) hy_set(t, i, ids[i]);
  return t;
}

Test(layers, model_gradchecks_every_parameter) {
  for (int tied = 0; tied < 2; tied++) {
    hy_model_config cfg = small_config(HY_F64);
    cfg.tied_embeddings = tied;
    cfg.init_std = 0.3;
    hy_model *m = hy_model_new(&cfg, 7);
    /* Scramble the norm gains so none of them sits at exactly 1. */
    hy_rng rng = hy_rng_new(12);
    for (int i = 0; i < m->params.n; i++)
      if (strstr(m->params.items[i].name, "norm"))
        hy_fill_normal(m->params.items[i].t, &rng, 1.0, 0.2);
    int32_t ids[] = {1, 4, 2, 8, 5, 7, 10, 0, 3, 3, 9, 6};
    int32_t tgt[] = {4, 2, 8, 5, 7, -1, 0, 3, 3, 9, 6, 1};
    cr_assert_eq(m->params.n, tied ? 2 * 9 + 2 : 2 * 9 + 3);
    bool ok = t_model_gradcheck(m, tokens_of(ids, 2, 6), tokens_of(tgt, 2, 6));
    cr_assert(ok, "model gradcheck (tied=%d), worst error %.3g", tied, hy_gradcheck_last_error());
    hy_model_free(m);
    hy_step_reset();
  }
}

/* Packed documents' positions reach the model as a context of its forward only. A row that is one
 * document, and a document's tokens before the row's first boundary, see what the stream sees:
 * their logits are the stream's, bit for bit; a token after a boundary sees less. */
Test(layers, positions_are_the_forwards_context_only) {
  hy_model_config cfg = small_config(HY_F64);
  hy_model *m = hy_model_new(&cfg, 7);
  int32_t ids[] = {1, 4, 2, 8, 5, 7, 10, 0, 3, 3, 9, 6};
  int32_t tgt[] = {4, 2, 8, -1, 7, -1, 0, 3, 3, 9, 6, 1};
  int32_t pos[] = {0, 1, 2, 3, 0, 0, 0, 1, 2, 3, 4, 5};
  hy_tensor *x = tokens_of(ids, 2, 6), *y = tokens_of(tgt, 2, 6), *p = tokens_of(pos, 2, 6);
  double stream = hy_item(hy_model_loss(m, x, y, -1));
  double packed = hy_item(hy_model_loss_packed(m, x, p, y, -1));
  cr_assert_neq(stream, packed);
  cr_assert_null(hy_mixer_positions(), "the positions outlive the forward");
  hy_tensor *logits = hy_model_forward_packed(m, x, p), *plain = hy_model_forward(m, x);
  int64_t V = plain->shape[2];
  const double *a = logits->data, *b = plain->data;
  for (int64_t t = 0; t < 12; t++) { /* row 0: documents at 0, 4 and 5; row 1: one document */
    bool same = t < 4 || t >= 6;
    bool equal = !memcmp(a + t * V, b + t * V, (size_t)V * sizeof(double));
    cr_assert(equal == same, "token %lld: logits %s the stream's", (long long)t,
              equal ? "equal" : "differ from");
  }
  hy_model_free(m);
  hy_step_reset();
}

Test(layers, positions_of_another_shape_stop_the_model, .signal = SIGABRT) {
  hy_model_config cfg = small_config(HY_F64);
  hy_model *m = hy_model_new(&cfg, 7);
  int32_t ids[] = {1, 4, 2, 8, 5, 7};
  hy_model_forward_packed(m, tokens_of(ids, 1, 6), tokens_of(ids, 2, 3));
}

/* A 2-layer model memorizes one fixed batch: the loss falls from about log(V) = 4.16 to below
 * 0.05 within 150 AdamW steps at lr 1e-2 (it gets there in about 60). */
Test(layers, model_overfits_one_batch) {
  hy_model_config cfg = hy_model_config_default();
  cfg.vocab = 64;
  cfg.d_model = 32;
  cfg.n_heads = 4;
  cfg.n_layers = 2;
  hy_model *m = hy_model_new(&cfg, 1);
  hy_rng rng = hy_rng_new(2);
  enum { B = 4, T = 16 };
  hy_tensor *all = hy_empty_persistent(HY_I32, HY_SHAPE(B, T + 1));
  for (int i = 0; i < B * (T + 1); i++) hy_set(all, i, (double)(hy_rng_u64(&rng) % 64));
  double first, loss;
  int step = t_overfit(m, all, 150, &first, &loss);
  cr_log_info("overfit: loss %.4f -> %.4f in %d steps", first, loss, step);
  cr_assert(fabs(first - log(64.0)) < 0.1, "initial loss %.4f should be near log(64)", first);
  cr_assert(loss < 0.05, "loss %.4f after %d steps", loss, step);
  hy_free(all);
  hy_model_free(m);
}

/* Feeding tokens one at a time through the KV-cache decoder gives the logits of the full forward.
 */
static void decode_vs_forward(int64_t window) {
  hy_model_config cfg = small_config(HY_F64);
  cfg.init_std = 0.3;
  cfg.attn_window = window;
  hy_model *m = hy_model_new(&cfg, 9);
  enum { B = 2, T = 9 };
  int32_t ids[B * T];
  hy_rng rng = hy_rng_new(4);
  for (int i = 0; i < B * T; i++) ids[i] = (int32_t)(hy_rng_u64(&rng) % 11);
  double worst = t_decoding_error(m, tokens_of(ids, B, T));
  cr_assert(worst <= 1e-10, "decoding vs forward (window %lld): relative error %.3g",
            (long long)window, worst);
  hy_model_free(m);
}

Test(layers, decoding_matches_the_full_forward) {
  decode_vs_forward(0);
  decode_vs_forward(4); /* a sliding window shorter than the sequence */
}
