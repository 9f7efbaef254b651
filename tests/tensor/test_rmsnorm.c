/* rmsnorm: y = x / sqrt(mean(x^2 over the last axis) + eps) * weight, with and without a weight.
 * Forward against a plain loop in double, in f32 and f64; backward of a large tensor against the
 * plain formula; gradcheck; bad shapes; determinism. */
#include "tests/support.h"

#include <math.h>
#include <stdio.h>

static const hy_dtype DTYPES[] = {HY_F32, HY_F64};

static hy_tensor *ref_rmsnorm(const hy_tensor *x, const hy_tensor *w, double eps) {
  int64_t d = x->shape[x->ndim - 1];
  hy_tensor *ref = hy_empty(HY_F64, hy_shape_of(x));
  for (int64_t r = 0; r < hy_numel(x) / d; r++) {
    double ss = 0;
    for (int64_t j = 0; j < d; j++) ss += hy_get(x, r * d + j) * hy_get(x, r * d + j);
    double inv = 1 / sqrt(ss / (double)d + eps);
    for (int64_t j = 0; j < d; j++)
      hy_set(ref, r * d + j, hy_get(x, r * d + j) * inv * (w ? hy_get(w, j) : 1.0));
  }
  return ref;
}

static void expect_rmsnorm(hy_tensor *x, hy_tensor *w, double eps, const char *what) {
  char name[160];
  snprintf(name, sizeof name, "rmsnorm %s: %s, weight %s, eps %g", what, hy_describe(x),
           hy_describe(w), eps);
  /* f64: a few ulp. f32: a sum of d <= 130 squares (positive, ~sqrt(d) ulp), a sqrt and two
   * products: a few ulp of f32. */
  t_expect_close(hy_rmsnorm(x, w, eps), ref_rmsnorm(x, w, eps), t_tol(x->dtype, 1e-12, 1e-5), name);
}

Test(rmsnorm, shapes_with_and_without_weight) {
  static const hy_shape shapes[] = {HY_SHAPE(7),       HY_SHAPE(3, 7), HY_SHAPE(2, 3, 13),
                                    HY_SHAPE(1, 33),   HY_SHAPE(5, 1), HY_SHAPE(2, 1, 3, 5),
                                    HY_SHAPE(260, 130)};
  for (int d = 0; d < 2; d++)
    for (int s = 0; s < 7; s++) {
      hy_dtype dt = DTYPES[d];
      hy_tensor *x = t_randn_next(dt, shapes[s]);
      int64_t dim = shapes[s].d[shapes[s].ndim - 1];
      expect_rmsnorm(x, t_gain(dt, dim), 1e-6, "weight");
      expect_rmsnorm(x, NULL, 1e-6, "no weight");
      expect_rmsnorm(x, t_gain(dt, dim), 0.5, "large eps");
    }
}

Test(rmsnorm, small_and_large_inputs) {
  for (int d = 0; d < 2; d++) {
    hy_dtype dt = DTYPES[d];
    hy_tensor *x = t_randn_next(dt, HY_SHAPE(3, 9)), *w = t_gain(dt, 9);
    expect_rmsnorm(hy_scale(x, 1e3), w, 1e-6, "x 1e3");
    expect_rmsnorm(hy_scale(x, 1e-3), w, 1e-6, "x 1e-3 (eps matters)");
    expect_rmsnorm(hy_zeros(dt, HY_SHAPE(2, 4)), t_gain(dt, 4), 1e-6, "zeros");
  }
}

Test(rmsnorm, views) {
  for (int d = 0; d < 2; d++) {
    hy_dtype dt = DTYPES[d];
    hy_tensor *x = t_randn_next(dt, HY_SHAPE(7, 3, 5));
    hy_tensor *w = hy_slice(t_gain(dt, 9), 0, 2, 9);
    expect_rmsnorm(hy_transpose(x, 0, 2), w, 1e-6, "transposed x, sliced weight");
    expect_rmsnorm(hy_slice(x, 1, 1, 3), NULL, 1e-6, "sliced x");
  }
}

/* With s = rstd per row, xh = x s, g = gy w: gx = s (g - xh mean(g xh)), gw = sum_rows gy xh.
 * Large (260 x 130): the threaded loop runs; the weight gradient sums 260 rows. */
Test(rmsnorm, backward_against_formula) {
  for (int d = 0; d < 2; d++) {
    hy_dtype dt = DTYPES[d];
    int64_t R = 260, D = 130;
    hy_tensor *x = t_param(t_randn_next(dt, HY_SHAPE(R, D))), *w = t_param(t_gain(dt, D));
    hy_tensor *y = hy_rmsnorm(x, w, 1e-5), *gy = t_randn_next(dt, HY_SHAPE(R, D));
    hy_backward_with(y, gy);
    hy_tensor *gx = hy_empty(HY_F64, HY_SHAPE(R, D)), *gw = hy_zeros(HY_F64, HY_SHAPE(D));
    for (int64_t r = 0; r < R; r++) {
      double ss = 0, dot = 0;
      for (int64_t j = 0; j < D; j++) ss += hy_get(x, r * D + j) * hy_get(x, r * D + j);
      double s = 1 / sqrt(ss / (double)D + 1e-5);
      for (int64_t j = 0; j < D; j++)
        dot += hy_get(gy, r * D + j) * hy_get(w, j) * hy_get(x, r * D + j) * s;
      for (int64_t j = 0; j < D; j++) {
        double xh = hy_get(x, r * D + j) * s, g = hy_get(gy, r * D + j) * hy_get(w, j);
        hy_set(gx, r * D + j, s * (g - xh * dot / (double)D));
        hy_set(gw, j, hy_get(gw, j) + hy_get(gy, r * D + j) * xh);
      }
    }
    /* f32: gw sums 260 random-signed terms, ~sqrt(n) ulp of the terms. */
    t_expect_close(x->grad, gx, t_tol(dt, 1e-12, 1e-5), "rmsnorm gx");
    t_expect_close(w->grad, gw, t_tol(dt, 1e-12, 1e-5), "rmsnorm gw");
  }
}

typedef struct {
  double eps;
  bool view;
} rms_ctx;

static hy_tensor *rms_w_gc(hy_tensor **in, void *ctx) {
  const rms_ctx *c = ctx;
  return hy_rmsnorm(c->view ? hy_transpose(in[0], 0, -1) : in[0], in[1], c->eps);
}

static hy_tensor *rms_gc(hy_tensor **in, void *ctx) {
  const rms_ctx *c = ctx;
  return hy_rmsnorm(c->view ? hy_transpose(in[0], 0, -1) : in[0], NULL, c->eps);
}

Test(rmsnorm, gradcheck) {
  rms_ctx c = {1e-6, false};
  hy_tensor *x = t_param(t_randn_next(HY_F64, HY_SHAPE(3, 7))), *w = t_param(t_gain(HY_F64, 7));
  t_expect_gradcheck(rms_w_gc, &c, 2, (hy_tensor *[]){x, w}, "rmsnorm x, w");
  t_expect_gradcheck(rms_gc, &c, 1, &x, "rmsnorm x, no weight");
  hy_tensor *x_const = t_randn_next(HY_F64, HY_SHAPE(2, 3, 7));
  t_expect_gradcheck(rms_w_gc, &c, 2, (hy_tensor *[]){x_const, w}, "rmsnorm w only");
  hy_tensor *x3 = t_param(t_randn_next(HY_F64, HY_SHAPE(2, 3, 7)));
  t_expect_gradcheck(rms_w_gc, &c, 2, (hy_tensor *[]){x3, w}, "rmsnorm 3-d");
  c = (rms_ctx){0.3, true};
  hy_tensor *xt = t_param(t_randn_next(HY_F64, HY_SHAPE(5, 2, 3)));
  hy_tensor *w3 = t_param(t_gain(HY_F64, 5)); /* x enters as [3, 2, 5] */
  t_expect_gradcheck(rms_w_gc, &c, 2, (hy_tensor *[]){xt, w3}, "rmsnorm transposed, eps 0.3");
  t_expect_gradcheck(rms_gc, &c, 1, &xt, "rmsnorm transposed, no weight");
  hy_tensor *x1 = t_param(t_randn_next(HY_F64, HY_SHAPE(4, 1)));
  c = (rms_ctx){1e-2, false};
  t_expect_gradcheck(rms_w_gc, &c, 2, (hy_tensor *[]){x1, t_param(t_gain(HY_F64, 1))}, "d = 1");
}

/* x's gradient both fresh and already holding another op's part when the norm's backward runs
 * (the norm first or last on the tape). */
static hy_tensor *norm_then_scale(hy_tensor **in, void *ctx) {
  (void)ctx;
  hy_tensor *y = hy_rmsnorm(in[0], in[1], 1e-6);
  return hy_add(y, hy_scale(in[0], 2.0));
}

static hy_tensor *scale_then_norm(hy_tensor **in, void *ctx) {
  (void)ctx;
  hy_tensor *x2 = hy_scale(in[0], 2.0);
  return hy_add(x2, hy_rmsnorm(in[0], in[1], 1e-6));
}

Test(rmsnorm, gradcheck_with_other_uses_of_x) {
  hy_tensor *in[2] = {t_param(t_randn_next(HY_F64, HY_SHAPE(3, 7))), t_param(t_gain(HY_F64, 7))};
  t_expect_gradcheck(norm_then_scale, NULL, 2, in, "rmsnorm, then another use of x");
  t_expect_gradcheck(scale_then_norm, NULL, 2, in, "another use of x, then rmsnorm");
}

Test(rmsnorm, deterministic) {
  hy_tensor *x = t_param(t_randn_next(HY_F32, HY_SHAPE(260, 130))),
            *w = t_param(t_gain(HY_F32, 130));
  hy_tensor *y1 = hy_rmsnorm(x, w, 1e-6), *y2 = hy_rmsnorm(x, w, 1e-6);
  t_expect_same_bits(y1, y2, "rmsnorm forward");
  hy_tensor *gy = t_randn_next(HY_F32, HY_SHAPE(260, 130));
  hy_backward_with(y1, gy);
  hy_tensor *gx = x->grad, *gw = w->grad;
  x->grad = w->grad = NULL;
  hy_backward_with(y2, gy);
  t_expect_same_bits(x->grad, gx, "rmsnorm gx");
  t_expect_same_bits(w->grad, gw, "rmsnorm gw");
}

static void weight_too_long(void) {
  hy_rmsnorm(hy_zeros(HY_F32, HY_SHAPE(3, 7)), hy_zeros(HY_F32, HY_SHAPE(8)), 1e-6);
}
static void weight_2d(void) {
  hy_rmsnorm(hy_zeros(HY_F64, HY_SHAPE(2, 3, 7)), hy_zeros(HY_F64, HY_SHAPE(1, 7)), 1e-6);
}
static void weight_dtype(void) {
  hy_rmsnorm(hy_zeros(HY_F64, HY_SHAPE(3, 7)), hy_zeros(HY_F32, HY_SHAPE(7)), 1e-6);
}

Test(rmsnorm, bad_use_aborts) {
  t_expect_abort(weight_too_long, 3, (const char *[]){"rmsnorm", "[8]", "[3, 7]"});
  t_expect_abort(weight_2d, 3, (const char *[]){"rmsnorm", "[1, 7]", "[2, 3, 7]"});
  t_expect_abort(weight_dtype, 3, (const char *[]){"rmsnorm", "[3, 7] f64", "[7] f32"});
}
