/* dense_cross_entropy: cross_entropy(h W^T) as one op. Against hy_cross_entropy(hy_dense(...)) in
 * f32 and f64 (the loss and both gradients, ignored rows, odd vocabularies, chunks of every size,
 * a loss gradient other than 1, gradients that accumulate), every row ignored, eval mode, a
 * float64 finite-difference gradcheck, the model's loss against its logits, and bad targets and
 * shapes. */
#include "layers/model.h"
#include "tests/support.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>

static const hy_dtype DTYPES[] = {HY_F32, HY_F64};
enum { IGNORE = -100 };

/* t's gradient, zeros where none was written (the two-op path writes none when every target is
 * ignored). */
static hy_tensor *grad_of(hy_tensor *t) { return t->grad ? t->grad : hy_zeros_like(t); }

/* The fused op and the two-op reference on copies of the same h and W, backward from a loss
 * gradient of `gloss`: the loss, gh and gW must agree within tol (max relative error). With
 * `twice`, h and W also pass through a second term first, so that the op's gradients add into
 * gradients already there. */
static void expect_matches(hy_dtype dt, hy_shape hs, int64_t V, double p_ignore, int64_t chunk,
                           double gloss, bool twice, const char *what) {
  int64_t d = hs.d[hs.ndim - 1];
  hy_shape ts = hs;
  ts.ndim--;
  hy_tensor *h0 = t_randn_next(dt, hs), *w0 = t_randn_next(dt, HY_SHAPE(V, d));
  hy_tensor *t = t_random_ints(ts, V, IGNORE, p_ignore);
  hy_tensor *h[2], *w[2], *loss[2];
  for (int k = 0; k < 2; k++) {
    h[k] = t_param(hy_copy(h0));
    w[k] = t_param(hy_copy(w0));
    hy_dense_cross_entropy_chunk(chunk);
    loss[k] = k == 0 ? hy_dense_cross_entropy(h[k], w[k], t, IGNORE)
                     : hy_cross_entropy(hy_dense(h[k], w[k], NULL), t, IGNORE);
    hy_dense_cross_entropy_chunk(0);
    hy_tensor *out = loss[k];
    if (twice) out = hy_add(out, hy_add(hy_sum_all(hy_mul(h[k], h[k])), hy_sum_all(w[k])));
    hy_backward_with(out, hy_full(dt, HY_SHAPE(1), gloss));
  }
  char name[200];
  double tol = t_tol(dt, 1e-12, 1e-5);
  snprintf(name, sizeof name, "%s %s V %lld chunk %lld: loss", what, hy_describe(h0), (long long)V,
           (long long)chunk);
  cr_assert(loss[0]->dtype == dt && loss[0]->ndim == 1 && loss[0]->shape[0] == 1, "%s: %s", name,
            hy_describe(loss[0]));
  t_expect_close(loss[0], loss[1], tol, name);
  snprintf(name, sizeof name, "%s %s V %lld chunk %lld: gradient of h", what, hy_describe(h0),
           (long long)V, (long long)chunk);
  t_expect_close(grad_of(h[0]), grad_of(h[1]), tol, name);
  snprintf(name, sizeof name, "%s %s V %lld chunk %lld: gradient of W", what, hy_describe(h0),
           (long long)V, (long long)chunk);
  t_expect_close(grad_of(w[0]), grad_of(w[1]), tol, name);
}

Test(dense_cross_entropy, matches_dense_then_cross_entropy) {
  static const struct {
    hy_shape h;
    int64_t V;
  } cases[] = {{HY_SHAPE(1, 1), 1},      {HY_SHAPE(7, 5), 13},    {HY_SHAPE(2, 3, 4), 37},
               {HY_SHAPE(2, 9, 16), 33}, {HY_SHAPE(130, 8), 257}, {HY_SHAPE(3, 1, 2, 6), 7}};
  for (int di = 0; di < 2; di++)
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
      int64_t rows = 1;
      for (int i = 0; i + 1 < cases[c].h.ndim; i++) rows *= cases[c].h.d[i];
      /* one chunk, one row a chunk, and chunks that do not divide the rows */
      const int64_t chunks[] = {0, 1, 4, rows - 1};
      for (int k = 0; k < 4; k++) {
        if (chunks[k] < 0) continue;
        expect_matches(DTYPES[di], cases[c].h, cases[c].V, 0.25, chunks[k], 1.0, false, "g 1");
      }
      expect_matches(DTYPES[di], cases[c].h, cases[c].V, 0.0, 3, 2.5, false, "none ignored, g 2.5");
      expect_matches(DTYPES[di], cases[c].h, cases[c].V, 0.3, 2, -0.75, true, "accumulating");
    }
}

/* With a loss gradient of 1 and one chunk, the CPU gives the two-op path's numbers to the bit:
 * the same GEMMs on the same (softmax - onehot) / count. */
Test(dense_cross_entropy, same_bits_as_dense_then_cross_entropy) {
  for (int di = 0; di < 2; di++) {
    hy_dtype dt = DTYPES[di];
    hy_tensor *h0 = t_randn_next(dt, HY_SHAPE(4, 50, 24));
    hy_tensor *w0 = t_randn_next(dt, HY_SHAPE(301, 24));
    hy_tensor *t = t_random_ints(HY_SHAPE(4, 50), 301, IGNORE, 0.1);
    hy_tensor *h[2], *w[2], *loss[2];
    for (int k = 0; k < 2; k++) {
      h[k] = t_param(hy_copy(h0));
      w[k] = t_param(hy_copy(w0));
      loss[k] = k == 0 ? hy_dense_cross_entropy(h[k], w[k], t, IGNORE)
                       : hy_cross_entropy(hy_dense(h[k], w[k], NULL), t, IGNORE);
      hy_backward(loss[k]);
    }
    t_expect_same_bits(loss[0], loss[1], "loss");
    t_expect_same_bits(h[0]->grad, h[1]->grad, "gradient of h");
    t_expect_same_bits(w[0]->grad, w[1]->grad, "gradient of W");
  }
}

Test(dense_cross_entropy, all_ignored_is_zero_with_zero_gradients) {
  for (int di = 0; di < 2; di++) {
    for (int64_t chunk = 0; chunk < 3; chunk += 2) {
      hy_tensor *h = t_param(t_randn_next(DTYPES[di], HY_SHAPE(5, 6)));
      hy_tensor *w = t_param(t_randn_next(DTYPES[di], HY_SHAPE(11, 6)));
      hy_tensor *t = t_random_ints(HY_SHAPE(5), 11, IGNORE, 1.0);
      hy_dense_cross_entropy_chunk(chunk);
      hy_tensor *loss = hy_dense_cross_entropy(h, w, t, IGNORE);
      hy_dense_cross_entropy_chunk(0);
      cr_assert(hy_item(loss) == 0.0, "all ignored: loss %g", hy_item(loss));
      hy_backward(loss);
      for (int64_t i = 0; i < hy_numel(h); i++)
        cr_assert(hy_get(h->grad, i) == 0.0, "gradient of h [%lld] not 0", (long long)i);
      for (int64_t i = 0; i < hy_numel(w); i++)
        cr_assert(hy_get(w->grad, i) == 0.0, "gradient of W [%lld] not 0", (long long)i);
    }
  }
  /* No rows at all: loss 0, W's gradient 0. */
  hy_tensor *w = t_param(t_randn_next(HY_F64, HY_SHAPE(3, 4)));
  hy_tensor *loss = hy_dense_cross_entropy(t_param(hy_zeros(HY_F64, HY_SHAPE(0, 4))), w,
                                           hy_zeros(HY_I32, HY_SHAPE(0)), IGNORE);
  cr_assert(hy_item(loss) == 0.0);
  hy_backward(loss);
  for (int64_t i = 0; i < 12; i++) cr_assert(hy_get(w->grad, i) == 0.0);
}

/* Only one of h and W needs a gradient; and in eval mode nothing is recorded. */
Test(dense_cross_entropy, partial_gradients_and_eval) {
  hy_tensor *h0 = t_randn_next(HY_F64, HY_SHAPE(9, 5));
  hy_tensor *w0 = t_randn_next(HY_F64, HY_SHAPE(17, 5));
  hy_tensor *t = t_random_ints(HY_SHAPE(9), 17, IGNORE, 0.2);
  for (int which = 0; which < 2; which++) {
    hy_tensor *h[2] = {hy_copy(h0), hy_copy(h0)}, *w[2] = {hy_copy(w0), hy_copy(w0)};
    hy_tensor **p = which == 0 ? h : w;
    for (int k = 0; k < 2; k++) t_param(p[k]);
    hy_backward(hy_dense_cross_entropy(h[0], w[0], t, IGNORE));
    hy_backward(hy_cross_entropy(hy_dense(h[1], w[1], NULL), t, IGNORE));
    cr_assert(h[0]->grad == NULL || which == 0);
    cr_assert(w[0]->grad == NULL || which == 1);
    t_expect_close(p[0]->grad, p[1]->grad, 1e-12, which == 0 ? "h only" : "W only");
  }
  hy_tensor *h = t_param(hy_copy(h0)), *w = t_param(hy_copy(w0));
  int64_t nodes = hy_tape_size();
  hy_no_grad_begin();
  hy_tensor *loss = hy_dense_cross_entropy(h, w, t, IGNORE);
  hy_no_grad_end();
  cr_assert_eq(hy_tape_size(), nodes, "eval mode recorded a node");
  cr_assert(!loss->requires_grad);
  t_expect_close(loss, hy_cross_entropy(hy_dense(h0, w0, NULL), t, IGNORE), 1e-12, "eval loss");
}

typedef struct {
  hy_tensor *targets;
  int64_t chunk;
  bool transposed; /* h as a transposed view */
} gc_ctx;

static hy_tensor *dce_gc(hy_tensor **in, void *ctx) {
  const gc_ctx *c = ctx;
  hy_dense_cross_entropy_chunk(c->chunk);
  hy_tensor *h = c->transposed ? hy_transpose(in[0], 0, 1) : in[0];
  hy_tensor *loss = hy_dense_cross_entropy(h, in[1], c->targets, IGNORE);
  hy_dense_cross_entropy_chunk(0);
  return loss;
}

Test(dense_cross_entropy, gradcheck) {
  hy_tensor *h = t_param(t_randn_next(HY_F64, HY_SHAPE(6, 5)));
  hy_tensor *w = t_param(t_randn_next(HY_F64, HY_SHAPE(7, 5)));
  gc_ctx c = {t_ints(HY_SHAPE(6), (int32_t[]){3, IGNORE, 0, 6, 3, 2}), 0, false};
  t_expect_gradcheck(dce_gc, &c, 2, (hy_tensor *[]){h, w}, "one chunk");
  c.chunk = 4;
  t_expect_gradcheck(dce_gc, &c, 2, (hy_tensor *[]){h, w}, "chunks of 4 rows");
  hy_tensor *h3 = t_param(t_randn_next(HY_F64, HY_SHAPE(4, 3, 5)));
  c = (gc_ctx){t_random_ints(HY_SHAPE(3, 4), 7, IGNORE, 0.25), 5, true};
  t_expect_gradcheck(dce_gc, &c, 2, (hy_tensor *[]){h3, w}, "transposed h [3, 4, 5]");
}

/* hy_model_loss (the fused op) against the model's logits through hy_cross_entropy, tied and
 * untied, in f64: the loss and every parameter's gradient. */
Test(dense_cross_entropy, model_loss_matches_logits_loss) {
  for (int tied = 0; tied < 2; tied++) {
    hy_model_config cfg = hy_model_config_default();
    cfg.dtype = HY_F64;
    cfg.vocab = 29;
    cfg.d_model = 16;
    cfg.n_heads = 2;
    cfg.n_layers = 1;
    cfg.tied_embeddings = tied;
    hy_model *m = hy_model_new(&cfg, 3);
    hy_tensor *x = t_random_ints(HY_SHAPE(2, 7), 29, IGNORE, 0.0),
              *y = t_random_ints(HY_SHAPE(2, 7), 29, IGNORE, 0.2);
    hy_tensor *grads[2][32];
    double loss[2];
    cr_assert(m->params.n <= 32);
    for (int k = 0; k < 2; k++) {
      hy_params_zero_grad(&m->params);
      hy_tensor *l = k == 0 ? hy_model_loss(m, x, y, IGNORE)
                            : hy_cross_entropy(hy_model_forward(m, x), y, IGNORE);
      loss[k] = hy_item(l);
      hy_backward(l);
      for (int i = 0; i < m->params.n; i++) grads[k][i] = hy_copy(m->params.items[i].t->grad);
    }
    cr_assert(fabs(loss[0] - loss[1]) <= 1e-12 * fabs(loss[1]), "tied %d: loss %.17g vs %.17g",
              tied, loss[0], loss[1]);
    for (int i = 0; i < m->params.n; i++)
      t_expect_close(grads[0][i], grads[1][i], 1e-12, m->params.items[i].name);
    hy_model_free(m);
    hy_step_reset();
  }
}

static void target_too_big(void) {
  hy_dense_cross_entropy(hy_zeros(HY_F32, HY_SHAPE(3, 4)), hy_zeros(HY_F32, HY_SHAPE(13, 4)),
                         t_ints(HY_SHAPE(3), (int32_t[]){0, 5, 13}), IGNORE);
}
static void target_negative(void) {
  hy_dense_cross_entropy(hy_zeros(HY_F64, HY_SHAPE(2, 4)), hy_zeros(HY_F64, HY_SHAPE(13, 4)),
                         t_ints(HY_SHAPE(2), (int32_t[]){-1, 5}), IGNORE);
}
/* Targets as a transposed view: the position named is the logical (row-major) one. */
static void target_in_a_view(void) {
  hy_tensor *t = hy_transpose(t_ints(HY_SHAPE(2, 3), (int32_t[]){0, 1, 2, 3, 4, 99}), 0, 1);
  hy_dense_cross_entropy(hy_zeros(HY_F32, HY_SHAPE(3, 2, 4)), hy_zeros(HY_F32, HY_SHAPE(13, 4)), t,
                         IGNORE);
}
static void targets_wrong_shape(void) {
  hy_dense_cross_entropy(hy_zeros(HY_F32, HY_SHAPE(2, 3, 4)), hy_zeros(HY_F32, HY_SHAPE(5, 4)),
                         hy_zeros(HY_I32, HY_SHAPE(2, 4)), IGNORE);
}
static void weight_wrong_width(void) {
  hy_dense_cross_entropy(hy_zeros(HY_F32, HY_SHAPE(2, 4)), hy_zeros(HY_F32, HY_SHAPE(5, 3)),
                         hy_zeros(HY_I32, HY_SHAPE(2)), IGNORE);
}
static void dtypes_differ(void) {
  hy_dense_cross_entropy(hy_zeros(HY_F32, HY_SHAPE(2, 4)), hy_zeros(HY_F64, HY_SHAPE(5, 4)),
                         hy_zeros(HY_I32, HY_SHAPE(2)), IGNORE);
}

Test(dense_cross_entropy, bad_target_stops_training, .signal = SIGABRT) { target_too_big(); }

Test(dense_cross_entropy, bad_use_aborts_with_a_message) {
  t_expect_abort(target_too_big, 4,
                 (const char *[]){"dense_cross_entropy", "target 13", "position 2", "[0, 13)"});
  t_expect_abort(target_negative, 4,
                 (const char *[]){"dense_cross_entropy", "target -1", "position 0", "[0, 13)"});
  t_expect_abort(target_in_a_view, 2, (const char *[]){"target 99", "position 5"});
  t_expect_abort(targets_wrong_shape, 3,
                 (const char *[]){"dense_cross_entropy", "[2, 3, 4]", "[2, 4]"});
  t_expect_abort(weight_wrong_width, 3,
                 (const char *[]){"dense_cross_entropy", "[2, 4]", "[5, 3]"});
  t_expect_abort(dtypes_differ, 3, (const char *[]){"dense_cross_entropy", "f32", "f64"});
}
