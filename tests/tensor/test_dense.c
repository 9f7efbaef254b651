/* hy_dense (a linear layer's x W^T + bias) on the CPU: forward and every gradient against the same
 * product built from hy_matmul and hy_transpose (and hy_add for the bias), in f32 and f64, for x
 * of 1 to 4 dims, with and without a bias; gradients that accumulate over several uses (the
 * weight in two layers, x in three ops); empty sizes; a float64 finite-difference gradcheck; bad
 * shapes and dtypes. */
#include "tests/support.h"

#include <math.h>
#include <stdio.h>

static const hy_dtype DTYPES[] = {HY_F32, HY_F64};

static void init(void) { t_seed = 100; } /* the inputs this suite was written on */
TestSuite(dense, .init = init);

static hy_tensor *param(hy_dtype dtype, hy_shape s) { return t_param(t_randn_next(dtype, s)); }

/* A fresh leaf with t's values that requires a gradient. */
static hy_tensor *twin(const hy_tensor *t) { return t_param(t_cast(t, t->dtype)); }

/* x W^T (+ bias) from the plain ops; x of any dims >= 1 (1-d as one row). */
static hy_tensor *reference(hy_tensor *x, hy_tensor *w, hy_tensor *bias) {
  hy_shape s = hy_shape_of(x);
  hy_tensor *x2 = x->ndim == 1 ? hy_reshape(x, HY_SHAPE(1, x->shape[0])) : x;
  hy_tensor *y = hy_matmul(x2, hy_transpose(w, 0, 1));
  s.d[s.ndim - 1] = w->shape[0];
  y = hy_reshape(y, s);
  return bias ? hy_add(y, bias) : y;
}

/* Results agree to rounding: f64 to 1e-12, f32 to 1e-6 (the same BLAS products, summed in the
 * same or another order). */
static double tol(hy_dtype dtype) { return t_tol(dtype, 1e-12, 1e-6); }

static void expect_dense(hy_dtype dtype, hy_shape xs, int64_t out, bool with_bias) {
  int64_t in = xs.d[xs.ndim - 1];
  hy_tensor *x = param(dtype, xs), *w = param(dtype, HY_SHAPE(out, in));
  hy_tensor *b = with_bias ? param(dtype, HY_SHAPE(out)) : NULL;
  hy_tensor *rx = twin(x), *rw = twin(w), *rb = b ? twin(b) : NULL;
  hy_tensor *y = hy_dense(x, w, b), *ref = reference(rx, rw, rb);
  char what[200];
  snprintf(what, sizeof what, "dense %s of x %s, weight %s, %s bias", hy_dtype_name(dtype),
           hy_describe(x), hy_describe(w), b ? "with" : "no");
  cr_assert(y->dtype == dtype, "%s: output dtype", what);
  t_expect_close(y, ref, tol(dtype), what);
  hy_tensor *gy = t_randn_next(dtype, hy_shape_of(y));
  hy_backward_with(y, gy);
  hy_backward_with(ref, gy);
  char name[240];
  snprintf(name, sizeof name, "%s: gradient of x", what);
  t_expect_close(x->grad, rx->grad, tol(dtype), name);
  snprintf(name, sizeof name, "%s: gradient of the weight", what);
  t_expect_close(w->grad, rw->grad, tol(dtype), name);
  if (b) {
    snprintf(name, sizeof name, "%s: gradient of the bias", what);
    t_expect_close(b->grad, rb->grad, tol(dtype), name);
  }
}

Test(dense, matches_matmul_of_the_transpose) {
  const hy_shape shapes[] = {HY_SHAPE(7),       HY_SHAPE(1, 7),       HY_SHAPE(5, 7),
                             HY_SHAPE(3, 4, 7), HY_SHAPE(2, 3, 5, 7), HY_SHAPE(33, 64)};
  const int64_t outs[] = {5, 1, 13};
  for (int d = 0; d < 2; d++)
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
      for (size_t o = 0; o < sizeof outs / sizeof *outs; o++)
        for (int bias = 0; bias < 2; bias++) expect_dense(DTYPES[d], shapes[s], outs[o], bias);
}

/* A transposed (non-contiguous) x and a weight sliced out of a wider one. */
Test(dense, strided_inputs) {
  for (int d = 0; d < 2; d++) {
    hy_tensor *xt = param(DTYPES[d], HY_SHAPE(7, 6)), *wide = param(DTYPES[d], HY_SHAPE(5, 10));
    hy_tensor *rxt = twin(xt), *rwide = twin(wide);
    hy_tensor *y = hy_dense(hy_transpose(xt, 0, 1), hy_slice(wide, 1, 2, 9), NULL);
    hy_tensor *ref = reference(hy_transpose(rxt, 0, 1), hy_slice(rwide, 1, 2, 9), NULL);
    t_expect_close(y, ref, tol(DTYPES[d]), "dense of strided views");
    hy_tensor *gy = t_randn_next(DTYPES[d], hy_shape_of(y));
    hy_backward_with(y, gy);
    hy_backward_with(ref, gy);
    t_expect_close(xt->grad, rxt->grad, tol(DTYPES[d]), "strided views: gradient of x");
    t_expect_close(wide->grad, rwide->grad, tol(DTYPES[d]), "strided views: gradient of W");
  }
}

/* z = dense(x, W, b) * dense(x, W, NULL) + sum(x * x): W's gradient sums two products, and x's
 * arrives first from x * x, then from both layers (each adding into it). */
static hy_tensor *two_uses(hy_tensor *x, hy_tensor *w, hy_tensor *b, bool plain) {
  hy_tensor *d1 = plain ? reference(x, w, b) : hy_dense(x, w, b);
  hy_tensor *d2 = plain ? reference(x, w, NULL) : hy_dense(x, w, NULL);
  return hy_add(hy_mul(d1, d2), hy_sum(hy_mul(x, x), -1, true));
}

Test(dense, gradients_accumulate_over_uses) {
  for (int d = 0; d < 2; d++) {
    hy_tensor *x = param(DTYPES[d], HY_SHAPE(3, 4, 9)), *w = param(DTYPES[d], HY_SHAPE(6, 9));
    hy_tensor *b = param(DTYPES[d], HY_SHAPE(6));
    hy_tensor *rx = twin(x), *rw = twin(w), *rb = twin(b);
    hy_tensor *z = two_uses(x, w, b, false), *ref = two_uses(rx, rw, rb, true);
    t_expect_close(z, ref, tol(DTYPES[d]), "two uses: forward");
    hy_tensor *gz = t_randn_next(DTYPES[d], hy_shape_of(z));
    hy_backward_with(z, gz);
    hy_backward_with(ref, gz);
    t_expect_close(x->grad, rx->grad, tol(DTYPES[d]), "two uses: gradient of x");
    t_expect_close(w->grad, rw->grad, tol(DTYPES[d]), "two uses: gradient of W");
    t_expect_close(b->grad, rb->grad, tol(DTYPES[d]), "two uses: gradient of b");
    /* a second backward pass adds to the leaves' gradients */
    hy_tensor *w_once = t_cast(w->grad, DTYPES[d]);
    hy_backward_with(two_uses(x, w, b, false), gz);
    for (int64_t i = 0; i < hy_numel(w_once); i++)
      cr_assert_float_eq(hy_get(w->grad, i), 2 * hy_get(w_once, i),
                         1e-5 * (1 + fabs(hy_get(w_once, i))), "second pass, W element %lld",
                         (long long)i);
  }
}

/* No rows: an empty output, and zero gradients for W and b. No inputs (in = 0): the output is
 * the bias alone. */
Test(dense, empty_sizes) {
  for (int d = 0; d < 2; d++) {
    hy_tensor *x = param(DTYPES[d], HY_SHAPE(0, 7)), *w = param(DTYPES[d], HY_SHAPE(5, 7));
    hy_tensor *b = param(DTYPES[d], HY_SHAPE(5));
    hy_tensor *y = hy_dense(x, w, b);
    cr_assert(y->ndim == 2 && y->shape[0] == 0 && y->shape[1] == 5);
    hy_backward_with(y, hy_zeros(DTYPES[d], HY_SHAPE(0, 5)));
    for (int64_t i = 0; i < hy_numel(w); i++) cr_assert(hy_get(w->grad, i) == 0);
    for (int64_t i = 0; i < 5; i++) cr_assert(hy_get(b->grad, i) == 0);

    hy_tensor *x0 = param(DTYPES[d], HY_SHAPE(3, 0)), *w0 = param(DTYPES[d], HY_SHAPE(4, 0));
    hy_tensor *b0 = param(DTYPES[d], HY_SHAPE(4));
    hy_tensor *y0 = hy_dense(x0, w0, b0);
    for (int64_t r = 0; r < 3; r++)
      for (int64_t c = 0; c < 4; c++) cr_assert(hy_get(y0, r * 4 + c) == hy_get(b0, c));
  }
}

/* ctx: whether in[2] is the bias (gradcheck takes no NULL inputs) */
static hy_tensor *dense_fn(hy_tensor **in, void *ctx) {
  return hy_dense(in[0], in[1], *(bool *)ctx ? in[2] : NULL);
}

Test(dense, gradcheck_f64) {
  hy_tensor *x = param(HY_F64, HY_SHAPE(2, 3, 5)), *w = param(HY_F64, HY_SHAPE(4, 5));
  hy_tensor *b = param(HY_F64, HY_SHAPE(4));
  bool with = true, without = false;
  t_expect_gradcheck(dense_fn, &with, 3, (hy_tensor *[]){x, w, b}, "dense with bias");
  t_expect_gradcheck(dense_fn, &without, 2, (hy_tensor *[]){x, w}, "dense without bias");
  hy_tensor *v = param(HY_F64, HY_SHAPE(5));
  t_expect_gradcheck(dense_fn, &with, 3, (hy_tensor *[]){v, w, b}, "dense of a 1-d x");
}

static void wrong_in(void) {
  hy_dense(t_randn(HY_F32, HY_SHAPE(3, 6), 1), t_randn(HY_F32, HY_SHAPE(5, 7), 2), NULL);
}

static void weight_not_2d(void) {
  hy_dense(t_randn(HY_F32, HY_SHAPE(3, 7), 1), t_randn(HY_F32, HY_SHAPE(1, 5, 7), 2), NULL);
}

static void mixed_dtypes(void) {
  hy_dense(t_randn(HY_F32, HY_SHAPE(3, 7), 1), t_randn(HY_F64, HY_SHAPE(5, 7), 2), NULL);
}

Test(dense, bad_use) {
  t_expect_abort(wrong_in, 2, (const char *[]){"dense", "does not fit weight"});
  t_expect_abort(weight_not_2d, 2, (const char *[]){"dense", "does not fit weight"});
  t_expect_abort(mixed_dtypes, 2, (const char *[]){"dense", "dtypes differ"});
}
