/* softmax and logsumexp over the last axis: forward against plain loops in double, in f32 and
 * f64, with large values (1000 and more) to prove stability; backward of a large tensor against
 * the plain formula; gradcheck; bad use; determinism. */
#include "tests/support.h"

#include <math.h>
#include <stdio.h>

static const hy_dtype DTYPES[] = {HY_F32, HY_F64};

/* Per row of the last axis: m = max, lse = m + log sum exp(x - m), softmax = exp(x - lse). */
static double row_lse(const hy_tensor *x, int64_t *idx) {
  int last = x->ndim - 1;
  int64_t n = x->shape[last];
  double m = -INFINITY, s = 0;
  for (idx[last] = 0; idx[last] < n; idx[last]++) m = fmax(m, t_at(x, idx));
  for (idx[last] = 0; idx[last] < n; idx[last]++) s += exp(t_at(x, idx) - m);
  return m + log(s);
}

static hy_tensor *ref_softmax(const hy_tensor *x) {
  hy_tensor *ref = hy_empty(HY_F64, hy_shape_of(x));
  int64_t idx[HY_MAX_DIMS];
  for (int64_t f = 0; f < hy_numel(x); f++) {
    t_unravel(f, x->ndim, x->shape, idx);
    int64_t j = idx[x->ndim - 1];
    double lse = row_lse(x, idx);
    idx[x->ndim - 1] = j;
    hy_set(ref, f, exp(t_at(x, idx) - lse));
  }
  return ref;
}

static hy_tensor *ref_logsumexp(const hy_tensor *x) {
  hy_shape s = hy_shape_of(x);
  s.ndim--;
  hy_tensor *ref = hy_empty(HY_F64, s);
  int64_t idx[HY_MAX_DIMS] = {0};
  for (int64_t f = 0; f < hy_numel(ref); f++) {
    t_unravel(f, s.ndim, s.d, idx);
    hy_set(ref, f, row_lse(x, idx));
  }
  return ref;
}

/* f64: exp and log of libm in another summation order, a few ulp. f32: real_exp within 3 ulp, and
 * a row sum of at most 130 positive terms, ~sqrt(n) ulp: far under 1e-5. */
static void expect_both(hy_tensor *x, const char *what) {
  char name[160];
  snprintf(name, sizeof name, "%s: %s", what, hy_describe(x));
  double tol = t_tol(x->dtype, 1e-12, 1e-5);
  hy_tensor *y = hy_softmax(x);
  t_expect_close(y, ref_softmax(x), tol, name);
  t_expect_close(hy_logsumexp(x), ref_logsumexp(x), tol, name);
  for (int64_t i = 0; i < hy_numel(y); i++)
    cr_assert(isfinite(hy_get(y, i)), "%s: softmax not finite", name);
}

Test(softmax, shapes) {
  /* The last shape (33540 elements) runs threaded. */
  static const hy_shape shapes[] = {HY_SHAPE(1),          HY_SHAPE(7),    HY_SHAPE(3, 13),
                                    HY_SHAPE(2, 3, 33),   HY_SHAPE(3, 1), HY_SHAPE(2, 1, 3, 5),
                                    HY_SHAPE(2, 129, 130)};
  for (int d = 0; d < 2; d++)
    for (int s = 0; s < 7; s++) expect_both(t_randn_next(DTYPES[d], shapes[s]), "normal");
}

Test(softmax, large_values_are_stable) {
  for (int d = 0; d < 2; d++) {
    hy_dtype dt = DTYPES[d];
    /* Normal values shifted by +1000 and -1000, scaled to spread +-300, and rows mixing both. */
    hy_tensor *x = t_randn_next(dt, HY_SHAPE(4, 13));
    hy_tensor *up = hy_add_scalar(x, 1000), *down = hy_add_scalar(x, -1000);
    expect_both(up, "+1000");
    expect_both(down, "-1000");
    expect_both(hy_scale(x, 300), "x 300");
    hy_tensor *mixed = hy_empty(dt, HY_SHAPE(3, 4));
    const double v[] = {1000, 999, -1000, 0, 88, 89, 90, -90, 1e4, 1e4, 1e4 - 1, -1e4};
    for (int i = 0; i < 12; i++) hy_set(mixed, i, v[i]);
    expect_both(mixed, "mixed");
  }
}

/* -inf entries (masks) get probability 0 and leave the rest normalized; a row of one finite value
 * among -inf is one-hot. */
Test(softmax, minus_infinity_entries) {
  for (int d = 0; d < 2; d++) {
    hy_tensor *x = t_randn_next(DTYPES[d], HY_SHAPE(4, 7));
    for (int64_t r = 0; r < 4; r++)
      for (int64_t j = r + 1; j < 7; j++) hy_set(x, r * 7 + j, -INFINITY);
    expect_both(x, "masked");
    hy_tensor *y = hy_softmax(x);
    cr_assert(hy_get(y, 0) == 1.0 && hy_get(y, 1) == 0.0, "one finite entry: one-hot");
  }
}

Test(softmax, views) {
  for (int d = 0; d < 2; d++) {
    hy_tensor *x = t_randn_next(DTYPES[d], HY_SHAPE(7, 3, 5));
    expect_both(hy_transpose(x, 0, 2), "transposed");
    expect_both(hy_slice(x, 2, 1, 4), "sliced");
  }
}

/* The threaded backward: gx = y (gy - sum gy y) for softmax, gy exp(x - lse) for logsumexp. */
Test(softmax, backward_large_against_formula) {
  for (int d = 0; d < 2; d++) {
    hy_dtype dt = DTYPES[d];
    hy_tensor *x = t_param(t_randn_next(dt, HY_SHAPE(2, 129, 130)));
    hy_tensor *y = hy_softmax(x), *gy = t_randn_next(dt, hy_shape_of(y));
    hy_backward_with(y, gy);
    hy_tensor *ys = ref_softmax(x), *ref = hy_empty(HY_F64, hy_shape_of(x));
    int64_t n = 130;
    for (int64_t r = 0; r < hy_numel(x) / n; r++) {
      double dot = 0;
      for (int64_t j = 0; j < n; j++) dot += hy_get(gy, r * n + j) * hy_get(ys, r * n + j);
      for (int64_t j = 0; j < n; j++)
        hy_set(ref, r * n + j, hy_get(ys, r * n + j) * (hy_get(gy, r * n + j) - dot));
    }
    /* f32: the row's dot product of 130 terms, ~sqrt(n) ulp. */
    t_expect_close(x->grad, ref, t_tol(dt, 1e-12, 1e-5), "softmax backward");

    x->grad = NULL;
    hy_tensor *l = hy_logsumexp(x), *gl = t_randn_next(dt, hy_shape_of(l));
    hy_backward_with(l, gl);
    for (int64_t f = 0; f < hy_numel(x); f++) hy_set(ref, f, hy_get(gl, f / n) * hy_get(ys, f));
    t_expect_close(x->grad, ref, t_tol(dt, 1e-12, 1e-5), "logsumexp backward");
  }
}

/* Rows around +-1000 and a spread of +-300: gradients against the formulas, no NaN or inf. */
Test(softmax, backward_at_large_values) {
  for (int d = 0; d < 2; d++) {
    hy_dtype dt = DTYPES[d];
    hy_tensor *base = t_randn_next(dt, HY_SHAPE(6, 13));
    hy_tensor *xs[] = {hy_add_scalar(base, 1000), hy_add_scalar(base, -1000), hy_scale(base, 300)};
    for (int k = 0; k < 3; k++) {
      hy_tensor *x = t_param(xs[k]), *ys = ref_softmax(x);
      hy_tensor *l = hy_logsumexp(x), *gl = t_randn_next(dt, hy_shape_of(l));
      hy_backward_with(l, gl);
      hy_tensor *ref = hy_empty(HY_F64, hy_shape_of(x));
      for (int64_t f = 0; f < hy_numel(x); f++) hy_set(ref, f, hy_get(gl, f / 13) * hy_get(ys, f));
      /* f32: the backward reads the saved lse, an f32 near 1000 whose ulp is 6.1e-5 (absolute);
       * exp(x - lse) inherits up to half of it as a relative error, so 1e-4 here. */
      t_expect_close(x->grad, ref, t_tol(dt, 1e-12, 1e-4), "logsumexp backward, large");
      x->grad = NULL;
      hy_tensor *y = hy_softmax(x), *gy = t_randn_next(dt, hy_shape_of(y));
      hy_backward_with(y, gy);
      for (int64_t r = 0; r < 6; r++) {
        double dot = 0;
        for (int64_t j = 0; j < 13; j++) dot += hy_get(gy, r * 13 + j) * hy_get(ys, r * 13 + j);
        for (int64_t j = 0; j < 13; j++)
          hy_set(ref, r * 13 + j, hy_get(ys, r * 13 + j) * (hy_get(gy, r * 13 + j) - dot));
      }
      t_expect_close(x->grad, ref, t_tol(dt, 1e-12, 1e-5), "softmax backward, large");
    }
  }
}

static hy_tensor *softmax_gc(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_softmax(in[0]);
}
static hy_tensor *logsumexp_gc(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_logsumexp(in[0]);
}
static hy_tensor *softmax_view_gc(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_softmax(hy_transpose(in[0], 0, -1));
}
static hy_tensor *logsumexp_view_gc(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_logsumexp(hy_slice(in[0], -1, 1, 6));
}

#define P(...) t_param(t_randn_next(HY_F64, HY_SHAPE(__VA_ARGS__)))

Test(softmax, gradcheck) {
  t_expect_gradcheck(softmax_gc, NULL, 1, (hy_tensor *[]){P(3, 7)}, "softmax");
  t_expect_gradcheck(softmax_gc, NULL, 1, (hy_tensor *[]){P(2, 3, 1)}, "softmax n = 1");
  t_expect_gradcheck(softmax_gc, NULL, 1, (hy_tensor *[]){P(2, 1, 3, 5)}, "softmax 4-d");
  t_expect_gradcheck(softmax_view_gc, NULL, 1, (hy_tensor *[]){P(5, 2, 3)}, "softmax view");
  t_expect_gradcheck(logsumexp_gc, NULL, 1, (hy_tensor *[]){P(3, 7)}, "logsumexp");
  t_expect_gradcheck(logsumexp_gc, NULL, 1, (hy_tensor *[]){P(13)}, "logsumexp 1-d");
  t_expect_gradcheck(logsumexp_gc, NULL, 1, (hy_tensor *[]){P(2, 3, 1)}, "logsumexp n = 1");
  t_expect_gradcheck(logsumexp_view_gc, NULL, 1, (hy_tensor *[]){P(2, 3, 7)}, "logsumexp view");
  /* Around 1000 softmax is as smooth as near 0, but gradcheck's step is relative to |x| (1e-2
   * there), too coarse for central differences: the step is set to 1e-5 absolute, as near 0; the
   * tolerance stays at its default. (logsumexp's value there carries an absolute rounding error
   * of ~1e-13, which central differences turn into 1e-8: its large-value backward is checked
   * against the formula in backward_at_large_values instead.) */
  hy_tensor *big = t_param(hy_add_scalar(t_randn(HY_F64, HY_SHAPE(3, 5), 99), 1000));
  hy_gradcheck_opts o = {.step = 1e-8};
  cr_assert(hy_gradcheck(softmax_gc, NULL, 1, &big, &o), "softmax +1000");
}

Test(softmax, deterministic) {
  hy_tensor *x = t_randn(HY_F32, HY_SHAPE(2, 129, 130), 1);
  t_expect_same_bits(hy_softmax(x), hy_softmax(x), "softmax");
  t_expect_same_bits(hy_logsumexp(x), hy_logsumexp(x), "logsumexp");
}

static void softmax_empty(void) { hy_softmax(hy_zeros(HY_F32, HY_SHAPE(3, 0))); }
static void logsumexp_ints(void) { hy_logsumexp(hy_zeros(HY_I32, HY_SHAPE(2, 7))); }

Test(softmax, bad_use_aborts) {
  t_expect_abort(softmax_empty, 2, (const char *[]){"softmax", "[3, 0]"});
  t_expect_abort(logsumexp_ints, 2, (const char *[]){"logsumexp", "[2, 7] i32"});
}
