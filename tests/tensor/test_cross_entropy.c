/* cross_entropy: mean over the targets that are not ignored of -log softmax(logits)[target].
 * Forward against a plain loop in double, in f32 and f64, with an ignore index, all targets
 * ignored, and large logits; backward against softmax - onehot; gradcheck; bad targets and shapes;
 * determinism. */
#include "tests/support.h"

#include <math.h>
#include <stdio.h>

static const hy_dtype DTYPES[] = {HY_F32, HY_F64};
enum { IGNORE = -100 };

/* Targets with about a quarter of them `ignore`. */
static hy_tensor *targets_for(hy_shape s, int64_t V, int ignore) {
  return t_random_ints(s, V, ignore, 0.25);
}

/* log sum_j exp(x_j) of row r of logits viewed as [rows, V], with the max subtracted. */
static double row_lse(const hy_tensor *logits, int64_t r, int64_t V) {
  double m = -INFINITY, s = 0;
  for (int64_t j = 0; j < V; j++) m = fmax(m, hy_get(logits, r * V + j));
  for (int64_t j = 0; j < V; j++) s += exp(hy_get(logits, r * V + j) - m);
  return m + log(s);
}

static double ref_loss(const hy_tensor *logits, const hy_tensor *targets, int ignore) {
  int64_t V = logits->shape[logits->ndim - 1], count = 0;
  double total = 0;
  for (int64_t r = 0; r < hy_numel(targets); r++) {
    int t = (int)hy_get(targets, r);
    if (t == ignore) continue;
    total += row_lse(logits, r, V) - hy_get(logits, r * V + t);
    count++;
  }
  return count ? total / (double)count : 0.0;
}

static void expect_loss_tol(hy_tensor *logits, hy_tensor *targets, int ignore, double tol32,
                            const char *what) {
  hy_tensor *loss = hy_cross_entropy(logits, targets, ignore);
  cr_assert(loss->ndim == 1 && loss->shape[0] == 1, "%s: loss shape %s", what, hy_describe(loss));
  cr_assert(loss->dtype == logits->dtype);
  hy_tensor *ref = hy_full(HY_F64, HY_SHAPE(1), ref_loss(logits, targets, ignore));
  char name[160];
  snprintf(name, sizeof name, "cross_entropy %s: %s", what, hy_describe(logits));
  /* f64: libm exp and log in another order, a few ulp. f32: per row an f32 log-sum-exp (real_exp
   * within 3 ulp, a sum of <= 130 positive terms), averaged in double: a few ulp of f32. */
  t_expect_close(loss, ref, t_tol(logits->dtype, 1e-12, tol32), name);
}

static void expect_loss(hy_tensor *logits, hy_tensor *targets, int ignore, const char *what) {
  expect_loss_tol(logits, targets, ignore, 1e-5, what);
}

Test(cross_entropy, forward_shapes_with_ignore) {
  static const hy_shape shapes[] = {HY_SHAPE(1, 1),  HY_SHAPE(7, 13),      HY_SHAPE(2, 3, 5),
                                    HY_SHAPE(1, 33), HY_SHAPE(2, 1, 3, 7), HY_SHAPE(260, 130)};
  for (int d = 0; d < 2; d++)
    for (int s = 0; s < 6; s++) {
      hy_shape ls = shapes[s], ts = ls;
      ts.ndim--;
      int64_t V = ls.d[ls.ndim - 1];
      hy_tensor *logits = t_randn_next(DTYPES[d], ls);
      expect_loss(logits, targets_for(ts, V, IGNORE), IGNORE, "ignore -100");
      /* The ignore index may be a class: rows whose target is 0 are skipped. */
      expect_loss(logits, targets_for(ts, V, 0), 0, "ignore class 0");
      expect_loss(logits, t_random_ints(ts, V, IGNORE, 0.0), IGNORE, "nothing ignored");
    }
}

Test(cross_entropy, all_ignored_is_zero_with_zero_gradient) {
  for (int d = 0; d < 2; d++) {
    hy_tensor *logits = t_param(t_randn_next(DTYPES[d], HY_SHAPE(3, 5)));
    hy_tensor *t = t_ints(HY_SHAPE(3), (int32_t[]){IGNORE, IGNORE, IGNORE});
    hy_tensor *loss = hy_cross_entropy(logits, t, IGNORE);
    cr_assert(hy_item(loss) == 0.0, "all ignored: loss %g", hy_item(loss));
    hy_backward(loss);
    for (int64_t i = 0; i < 15; i++)
      cr_assert(logits->grad == NULL || hy_get(logits->grad, i) == 0.0, "grad[%lld] not 0",
                (long long)i);
  }
}

Test(cross_entropy, large_logits_are_stable) {
  for (int d = 0; d < 2; d++) {
    hy_dtype dt = DTYPES[d];
    hy_tensor *x = t_randn_next(dt, HY_SHAPE(6, 11));
    hy_tensor *t = targets_for(HY_SHAPE(6), 11, IGNORE);
    /* f32: each row's log-sum-exp near +-1000 is an f32 with an ulp of 6.1e-5, so the loss (a
     * few units: the difference of two such numbers) carries an absolute error up to ~3e-5, a
     * relative one up to ~1e-5: 1e-4 for these rows. */
    expect_loss_tol(hy_add_scalar(x, 1000), t, IGNORE, 1e-4, "+1000");
    expect_loss_tol(hy_add_scalar(x, -1000), t, IGNORE, 1e-4, "-1000");
    expect_loss(hy_scale(x, 500), t, IGNORE, "x 500");
    /* The target far below the max: a loss of ~2000, finite. */
    hy_tensor *far = hy_empty(dt, HY_SHAPE(2, 3));
    const double v[] = {1000, -1000, 0, -1000, 1000, 999};
    for (int i = 0; i < 6; i++) hy_set(far, i, v[i]);
    expect_loss(far, t_ints(HY_SHAPE(2), (int32_t[]){1, 2}), IGNORE, "far target");
  }
}

Test(cross_entropy, views) {
  for (int d = 0; d < 2; d++) {
    hy_tensor *x = t_randn_next(DTYPES[d], HY_SHAPE(7, 4, 5));
    hy_tensor *xt = hy_transpose(x, 0, 2); /* [5, 4, 7] */
    hy_tensor *t = targets_for(HY_SHAPE(5, 4), 7, IGNORE);
    expect_loss(xt, t, IGNORE, "transposed logits");
    expect_loss(xt, hy_transpose(targets_for(HY_SHAPE(4, 5), 7, IGNORE), 0, 1), IGNORE,
                "transposed targets");
    expect_loss(hy_slice(x, 2, 1, 4), targets_for(HY_SHAPE(7, 4), 3, IGNORE), IGNORE, "sliced");
  }
}

/* glogits = g / count * (softmax(row) - onehot(target)) on rows that are not ignored, 0 on the
 * others. Large (260 x 130), so the threaded loops run. */
Test(cross_entropy, backward_against_formula) {
  for (int d = 0; d < 2; d++) {
    hy_dtype dt = DTYPES[d];
    int64_t R = 260, V = 130;
    hy_tensor *logits = t_param(t_randn_next(dt, HY_SHAPE(R, V)));
    hy_tensor *t = targets_for(HY_SHAPE(R), V, IGNORE);
    hy_tensor *loss = hy_cross_entropy(logits, t, IGNORE);
    hy_backward_with(loss, hy_full(dt, HY_SHAPE(1), 2.5));
    int64_t count = 0;
    for (int64_t r = 0; r < R; r++) count += hy_get(t, r) != IGNORE;
    hy_tensor *ref = hy_zeros(HY_F64, HY_SHAPE(R, V));
    for (int64_t r = 0; r < R; r++) {
      int tr = (int)hy_get(t, r);
      if (tr == IGNORE) continue;
      double lse = row_lse(logits, r, V);
      for (int64_t j = 0; j < V; j++)
        hy_set(ref, r * V + j,
               2.5 / (double)count * (exp(hy_get(logits, r * V + j) - lse) - (j == tr)));
    }
    t_expect_close(logits->grad, ref, t_tol(dt, 1e-12, 1e-5), "cross_entropy backward");
  }
}

typedef struct {
  hy_tensor *targets;
  int ignore;
  bool view;
} ce_ctx;

static hy_tensor *ce_gc(hy_tensor **in, void *ctx) {
  const ce_ctx *c = ctx;
  return hy_cross_entropy(c->view ? hy_transpose(in[0], 0, 1) : in[0], c->targets, c->ignore);
}

Test(cross_entropy, gradcheck) {
  ce_ctx c = {t_ints(HY_SHAPE(5), (int32_t[]){3, IGNORE, 0, 6, 3}), IGNORE, false};
  hy_tensor *x = t_param(t_randn_next(HY_F64, HY_SHAPE(5, 7)));
  t_expect_gradcheck(ce_gc, &c, 1, &x, "cross_entropy with an ignored row");
  c.ignore = 3;
  c.targets = t_ints(HY_SHAPE(5), (int32_t[]){3, 1, 0, 6, 3});
  t_expect_gradcheck(ce_gc, &c, 1, &x, "cross_entropy ignoring class 3");
  c = (ce_ctx){targets_for(HY_SHAPE(2, 3), 5, IGNORE), IGNORE, false};
  hy_tensor *x3 = t_param(t_randn_next(HY_F64, HY_SHAPE(2, 3, 5)));
  t_expect_gradcheck(ce_gc, &c, 1, &x3, "cross_entropy 3-d");
  c = (ce_ctx){t_ints(HY_SHAPE(4, 3), (int32_t[]){0, 1, 2, 4, 4, IGNORE, 1, 1, 0, 3, 2, 1}), IGNORE,
               true};
  hy_tensor *xt = t_param(t_randn_next(HY_F64, HY_SHAPE(3, 4, 5)));
  t_expect_gradcheck(ce_gc, &c, 1, &xt, "cross_entropy of transposed logits");
}

Test(cross_entropy, deterministic) {
  hy_tensor *x = t_param(t_randn_next(HY_F32, HY_SHAPE(260, 130)));
  hy_tensor *t = targets_for(HY_SHAPE(260), 130, IGNORE);
  hy_tensor *l1 = hy_cross_entropy(x, t, IGNORE), *l2 = hy_cross_entropy(x, t, IGNORE);
  t_expect_same_bits(l1, l2, "cross_entropy forward");
  hy_backward(l1);
  hy_tensor *g1 = x->grad;
  x->grad = NULL;
  hy_backward(l2);
  t_expect_same_bits(x->grad, g1, "cross_entropy backward");
}

/* Logits that feed two losses: the second's backward writes their gradient, the first's adds into
 * it (ignored rows included, which it leaves alone). */
Test(cross_entropy, gradient_accumulates) {
  for (int d = 0; d < 2; d++) {
    hy_dtype dt = DTYPES[d];
    hy_tensor *x = t_param(t_randn_next(dt, HY_SHAPE(9, 11)));
    hy_tensor *t1 = targets_for(HY_SHAPE(9), 11, IGNORE),
              *t2 = targets_for(HY_SHAPE(9), 11, IGNORE);
    hy_backward(hy_add(hy_cross_entropy(x, t1, IGNORE), hy_cross_entropy(x, t2, IGNORE)));
    hy_tensor *both = hy_copy(x->grad);
    x->grad = NULL;
    hy_backward(hy_cross_entropy(x, t1, IGNORE));
    hy_tensor *one = hy_copy(x->grad);
    x->grad = NULL;
    hy_backward(hy_cross_entropy(x, t2, IGNORE));
    t_expect_close(both, hy_add(one, x->grad), t_tol(dt, 1e-15, 1e-6), "two losses");
  }
}

static void target_too_big(void) {
  hy_cross_entropy(hy_zeros(HY_F32, HY_SHAPE(3, 13)), t_ints(HY_SHAPE(3), (int32_t[]){0, 5, 13}),
                   IGNORE);
}
static void target_negative(void) {
  hy_cross_entropy(hy_zeros(HY_F64, HY_SHAPE(2, 13)), t_ints(HY_SHAPE(2), (int32_t[]){-1, 5}),
                   IGNORE);
}
/* Targets as a transposed view: the position named is the logical (row-major) one. */
static void target_in_a_view(void) {
  hy_tensor *t = hy_transpose(t_ints(HY_SHAPE(2, 3), (int32_t[]){0, 1, 2, 3, 4, 99}), 0, 1);
  hy_cross_entropy(hy_zeros(HY_F32, HY_SHAPE(3, 2, 13)), t, IGNORE);
}
static void targets_wrong_shape(void) {
  hy_cross_entropy(hy_zeros(HY_F32, HY_SHAPE(2, 3, 5)), hy_zeros(HY_I32, HY_SHAPE(2, 4)), IGNORE);
}
static void float_targets(void) {
  hy_cross_entropy(hy_zeros(HY_F32, HY_SHAPE(2, 5)), hy_zeros(HY_F32, HY_SHAPE(2)), IGNORE);
}

Test(cross_entropy, bad_use_aborts) {
  t_expect_abort(target_too_big, 4,
                 (const char *[]){"cross_entropy", "target 13", "position 2", "[0, 13)"});
  t_expect_abort(target_negative, 3, (const char *[]){"cross_entropy", "target -1", "[0, 13)"});
  t_expect_abort(target_in_a_view, 3, (const char *[]){"cross_entropy", "target 99", "position 5"});
  t_expect_abort(targets_wrong_shape, 3, (const char *[]){"cross_entropy", "[2, 3, 5]", "[2, 4]"});
  t_expect_abort(float_targets, 3, (const char *[]){"cross_entropy", "i32", "[2] f32"});
}
