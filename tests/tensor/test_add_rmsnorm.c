/* add_rmsnorm: h = rmsnorm(x + y) * weight with the sum as a second output, the residual step of
 * a pre-norm block. On the CPU it gives the bits of hy_add followed by hy_rmsnorm, forward and
 * backward, in f32 and f64, with both outputs used, each alone, y NULL and y = x; float64
 * gradient checks of every form; the model built on it (hy_model_hidden) gives the head's input,
 * with and without gradients; bad use aborts. */
#include "layers/model.h"
#include "tests/support.h"

#include <stdio.h>
#include <string.h>

static const hy_dtype DTYPES[] = {HY_F32, HY_F64};

/* Which outputs the loss reads. */
enum { USE_BOTH, USE_NORM, USE_SUM };

/* sum(h * rh) and / or sum(s * rs): a loss that sends fixed random gradients into the outputs. */
static hy_tensor *loss_of(hy_tensor *h, hy_tensor *s, hy_tensor *rh, hy_tensor *rs, int use) {
  hy_tensor *lh = hy_sum_all(hy_mul(h, rh)), *ls = hy_sum_all(hy_mul(s, rs));
  return use == USE_BOTH ? hy_add(lh, ls) : use == USE_NORM ? lh : ls;
}

/* The fused op against the two ops it replaces: the same bits for both outputs and every
 * gradient. `same` makes y the tensor x (the sum 2 x), `no_y` leaves y out. */
static void expect_same_as_unfused(hy_dtype dt, hy_shape shape, bool weight, int use, bool no_y,
                                   bool same) {
  int64_t d = shape.d[shape.ndim - 1];
  char name[160];
  snprintf(name, sizeof name, "%s d %lld weight %d use %d no_y %d same %d", hy_dtype_name(dt),
           (long long)d, weight, use, no_y, same);
  hy_tensor *x0 = t_randn_next(dt, shape), *y0 = t_randn_next(dt, shape), *w0 = t_gain(dt, d);
  hy_tensor *rh = t_randn_next(dt, shape), *rs = t_randn_next(dt, shape);
  hy_tensor *in[2][3], *h[2], *s[2];
  for (int pass = 0; pass < 2; pass++) { /* 0: the unfused ops, 1: the fused op */
    hy_tensor **v = in[pass];
    v[0] = t_param(t_cast(x0, dt));
    v[1] = no_y ? NULL : same ? v[0] : t_param(t_cast(y0, dt));
    v[2] = weight ? t_param(t_cast(w0, dt)) : NULL;
    if (pass == 0) {
      s[0] = v[1] ? hy_add(v[0], v[1]) : v[0];
      h[0] = hy_rmsnorm(s[0], v[2], 1e-6);
    } else {
      h[1] = hy_add_rmsnorm(v[0], v[1], v[2], 1e-6, dt, &s[1]);
      if (!v[1]) cr_assert(s[1] == v[0], "%s: without y the sum is x itself", name);
    }
    hy_backward(loss_of(h[pass], s[pass], rh, rs, no_y && use == USE_SUM ? USE_NORM : use));
  }
  char what[200];
  snprintf(what, sizeof what, "%s: norm", name);
  t_expect_same_bits(h[1], h[0], what);
  snprintf(what, sizeof what, "%s: sum", name);
  t_expect_same_bits(s[1], s[0], what);
  const char *inputs[] = {"x", "y", "weight"};
  for (int i = 0; i < 3; i++) {
    if (!in[0][i] || (i == 1 && same)) continue;
    snprintf(what, sizeof what, "%s: gradient of %s", name, inputs[i]);
    if (!in[0][i]->grad) {
      cr_assert(!in[1][i]->grad, "%s: unexpected", what);
      continue;
    }
    t_expect_same_bits(in[1][i]->grad, in[0][i]->grad, what);
  }
}

Test(add_rmsnorm, same_bits_as_add_then_rmsnorm) {
  static const hy_shape shapes[] = {HY_SHAPE(7), HY_SHAPE(3, 7), HY_SHAPE(2, 3, 13), HY_SHAPE(5, 1),
                                    HY_SHAPE(260, 130)};
  for (int k = 0; k < 2; k++)
    for (int s = 0; s < 5; s++)
      for (int use = USE_BOTH; use <= USE_SUM; use++) {
        expect_same_as_unfused(DTYPES[k], shapes[s], true, use, false, false);
        expect_same_as_unfused(DTYPES[k], shapes[s], false, use, false, false);
      }
  for (int k = 0; k < 2; k++) {
    expect_same_as_unfused(DTYPES[k], HY_SHAPE(260, 130), true, USE_NORM, true, false);
    expect_same_as_unfused(DTYPES[k], HY_SHAPE(2, 3, 13), false, USE_NORM, true, false);
    expect_same_as_unfused(DTYPES[k], HY_SHAPE(260, 130), true, USE_BOTH, false, true);
  }
}

/* Views go in as copies: a transposed x and a sliced y give the values of their copies. */
Test(add_rmsnorm, views) {
  for (int k = 0; k < 2; k++) {
    hy_dtype dt = DTYPES[k];
    hy_tensor *x = t_randn_next(dt, HY_SHAPE(5, 4, 3)), *y = t_randn_next(dt, HY_SHAPE(3, 4, 9));
    hy_tensor *xv = hy_transpose(x, 0, 2), *yv = hy_slice(y, 2, 2, 7), *w = t_gain(dt, 5), *s, *sc;
    hy_tensor *h = hy_add_rmsnorm(xv, yv, w, 1e-6, dt, &s);
    hy_tensor *hc = hy_add_rmsnorm(hy_contiguous(xv), hy_contiguous(yv), w, 1e-6, dt, &sc);
    t_expect_same_bits(h, hc, "add_rmsnorm of views: norm");
    t_expect_same_bits(s, sc, "add_rmsnorm of views: sum");
  }
}

typedef struct {
  int use;
  bool weight, no_y, same, view;
  double eps;
} gc_ctx;

static hy_tensor *add_rmsnorm_gc(hy_tensor **in, void *ctx) {
  const gc_ctx *c = ctx;
  hy_tensor *x = c->view ? hy_transpose(in[0], 0, -1) : in[0];
  hy_tensor *y = c->no_y ? NULL : c->same ? x : in[1], *s;
  hy_tensor *h = hy_add_rmsnorm(x, y, c->weight ? in[2] : NULL, c->eps, x->dtype, &s);
  /* a nonlinear use of the sum, so that its gradient is not a constant */
  hy_tensor *ls = hy_mul(s, s);
  return c->use == USE_BOTH ? hy_add(h, ls) : c->use == USE_NORM ? h : ls;
}

/* Every input is passed; those a case leaves out get no gradient, which the check confirms. */
Test(add_rmsnorm, gradcheck) {
  const gc_ctx cases[] = {
      {USE_BOTH, true, false, false, false, 1e-6}, {USE_NORM, true, false, false, false, 1e-6},
      {USE_SUM, true, false, false, false, 1e-6},  {USE_BOTH, false, false, false, false, 1e-6},
      {USE_NORM, true, true, false, false, 1e-6},  {USE_NORM, false, true, false, false, 0.3},
      {USE_BOTH, true, false, true, false, 1e-6},  {USE_BOTH, true, false, false, true, 0.3},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const gc_ctx *c = &cases[i];
    hy_shape s = c->view ? HY_SHAPE(7, 2, 3) : HY_SHAPE(2, 3, 7);
    hy_shape sy = c->view ? HY_SHAPE(3, 2, 7) : s;
    hy_tensor *in[3] = {t_param(t_randn_next(HY_F64, s)), t_param(t_randn_next(HY_F64, sy)),
                        t_param(t_gain(HY_F64, 7))};
    char name[96];
    snprintf(name, sizeof name, "add_rmsnorm use %d weight %d no_y %d same %d view %d", c->use,
             c->weight, c->no_y, c->same, c->view);
    t_expect_gradcheck(add_rmsnorm_gc, (void *)c, 3, in, name);
  }
}

/* The weight's and y's gradients alone (x needs none), and y's alone. */
Test(add_rmsnorm, gradients_of_some_inputs) {
  gc_ctx c = {USE_BOTH, true, false, false, false, 1e-6};
  hy_tensor *in[3] = {t_randn_next(HY_F64, HY_SHAPE(4, 6)),
                      t_param(t_randn_next(HY_F64, HY_SHAPE(4, 6))), t_param(t_gain(HY_F64, 6))};
  t_expect_gradcheck(add_rmsnorm_gc, &c, 3, in, "add_rmsnorm, y and weight");
  hy_tensor *only_y[3] = {t_randn_next(HY_F64, HY_SHAPE(4, 6)),
                          t_param(t_randn_next(HY_F64, HY_SHAPE(4, 6))), t_gain(HY_F64, 6)};
  t_expect_gradcheck(add_rmsnorm_gc, &c, 3, only_y, "add_rmsnorm, y only");
}

/* ---- the model on the fused residual steps ---- */

static hy_tensor *tokens(int64_t B, int64_t T, int64_t vocab) {
  hy_tensor *t = hy_empty(HY_I32, HY_SHAPE(B, T));
  hy_rng rng = hy_rng_new(t_next_seed());
  for (int64_t i = 0; i < B * T; i++) ((int32_t *)t->data)[i] = (int32_t)(hy_rng_u64(&rng) % vocab);
  return t;
}

/* hy_model_forward is the head of hy_model_hidden, and evaluation (no gradients, each block's
 * memory given back as it ends) gives the bits of the forward with gradients. */
Test(add_rmsnorm, model_hidden_feeds_the_head) {
  hy_model_config cfg = hy_model_config_default();
  cfg.vocab = 40;
  cfg.d_model = 32;
  cfg.n_layers = 3;
  cfg.tied_embeddings = false;
  snprintf(cfg.layers[1], HY_KIND_NAME_MAX, "gla");
  cfg.gla.chunk = 8;
  hy_model *m = hy_model_new(&cfg, 4);
  hy_tensor *tok = tokens(2, 19, cfg.vocab);
  hy_tensor *h = hy_model_hidden(m, tok);
  cr_assert(h->ndim == 3 && h->shape[0] == 2 && h->shape[1] == 19 && h->shape[2] == 32, "hidden %s",
            hy_describe(h));
  hy_tensor *logits = hy_model_forward(m, tok);
  t_expect_same_bits(logits, hy_linear_forward(&m->head, h), "forward = head(hidden)");
  hy_no_grad_begin();
  hy_tensor *eval = hy_model_forward(m, tok);
  hy_no_grad_end();
  t_expect_same_bits(eval, logits, "evaluation = forward with gradients");
  hy_model_free(m);
}

/* ---- bad use ---- */

static void y_shape(void) {
  hy_add_rmsnorm(hy_zeros(HY_F32, HY_SHAPE(3, 7)), hy_zeros(HY_F32, HY_SHAPE(3, 8)), NULL, 1e-6,
                 HY_F32, NULL);
}
static void y_dtype(void) {
  hy_add_rmsnorm(hy_zeros(HY_F64, HY_SHAPE(3, 7)), hy_zeros(HY_F32, HY_SHAPE(3, 7)), NULL, 1e-6,
                 HY_F64, NULL);
}
static void bf16_on_cpu(void) {
  hy_add_rmsnorm(hy_zeros(HY_F32, HY_SHAPE(3, 7)), NULL, NULL, 1e-6, HY_BF16, NULL);
}
static void weight_dtype(void) {
  hy_add_rmsnorm(hy_zeros(HY_F32, HY_SHAPE(3, 7)), NULL, hy_zeros(HY_F64, HY_SHAPE(7)), 1e-6,
                 HY_F32, NULL);
}
static void weight_size(void) {
  hy_add_rmsnorm(hy_zeros(HY_F32, HY_SHAPE(3, 7)), NULL, hy_zeros(HY_F32, HY_SHAPE(6)), 1e-6,
                 HY_F32, NULL);
}

Test(add_rmsnorm, bad_use_aborts) {
  t_expect_abort(y_shape, 3, (const char *[]){"add_rmsnorm", "[3, 7]", "[3, 8]"});
  t_expect_abort(y_dtype, 3, (const char *[]){"add_rmsnorm", "[3, 7] f32", "[3, 7] f64"});
  t_expect_abort(bf16_on_cpu, 2, (const char *[]){"add_rmsnorm", "bf16"});
  t_expect_abort(weight_dtype, 3, (const char *[]){"add_rmsnorm", "[7] f64", "[3, 7] f32"});
  t_expect_abort(weight_size, 3, (const char *[]){"add_rmsnorm", "[6]", "[3, 7]"});
}
