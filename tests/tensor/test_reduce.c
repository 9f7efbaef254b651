/* sum, mean, max over each axis (with and without keepdim) and sum_all: forward against plain
 * loops in double, in f32 and f64; max's gradient goes to the first maximum; gradcheck; bad use;
 * determinism. */
#include "tests/support.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const hy_dtype DTYPES[] = {HY_F32, HY_F64};

enum { SUM, MEAN, MAX };
static const char *const NAMES[] = {"sum", "mean", "max"};

static hy_tensor *run(int kind, hy_tensor *x, int axis, bool keepdim) {
  switch (kind) {
  case SUM: return hy_sum(x, axis, keepdim);
  case MEAN: return hy_mean(x, axis, keepdim);
  default: return hy_max(x, axis, keepdim);
  }
}

/* The reduction by its definition, over logical indices. */
static hy_tensor *ref_reduce(int kind, const hy_tensor *x, int axis, bool keepdim) {
  int a = axis < 0 ? axis + x->ndim : axis;
  hy_shape s = hy_shape_of(x);
  if (keepdim) {
    s.d[a] = 1;
  } else {
    for (int i = a; i + 1 < s.ndim; i++) s.d[i] = s.d[i + 1];
    s.ndim--;
  }
  hy_shape kept = hy_shape_of(x); /* the output's index space with the axis kept */
  kept.d[a] = 1;
  hy_tensor *ref = hy_empty(HY_F64, s);
  int64_t idx[HY_MAX_DIMS];
  for (int64_t f = 0; f < hy_numel(ref); f++) {
    t_unravel(f, x->ndim, kept.d, idx);
    double acc = kind == MAX ? -INFINITY : 0;
    for (int64_t j = 0; j < x->shape[a]; j++) {
      idx[a] = j;
      double v = t_at(x, idx);
      acc = kind == MAX ? fmax(acc, v) : acc + v;
    }
    hy_set(ref, f, kind == MEAN ? acc / (double)x->shape[a] : acc);
  }
  return ref;
}

static const hy_shape SHAPES[] = {HY_SHAPE(7),           HY_SHAPE(1),          HY_SHAPE(3, 5),
                                  HY_SHAPE(2, 3, 7),     HY_SHAPE(3, 1, 7),    HY_SHAPE(2, 3, 5, 7),
                                  HY_SHAPE(1, 13, 1, 3), HY_SHAPE(2, 129, 130)};
enum { N_SHAPES = sizeof SHAPES / sizeof *SHAPES };

static void expect_reduce(int kind, hy_tensor *x, int axis, bool keepdim, const char *what) {
  char name[160];
  snprintf(name, sizeof name, "%s %s over %d%s: %s", NAMES[kind], what, axis,
           keepdim ? " keepdim" : "", hy_describe(x));
  hy_tensor *y = run(kind, x, axis, keepdim);
  /* f64: the same sum, at most 130 terms, in the same or another order: a few ulp of the
   * largest partial sum. f32: sums of up to 130 normal numbers err by ~sqrt(n) ulp of the terms,
   * under 1e-5 of the largest output (itself ~sqrt(n) times a term). max is exact. */
  t_expect_close(y, ref_reduce(kind, x, axis, keepdim), t_tol(x->dtype, 1e-12, 1e-5), name);
}

Test(reduce, every_axis_keepdim_or_not) {
  for (int d = 0; d < 2; d++)
    for (int kind = 0; kind < 3; kind++)
      for (int s = 0; s < N_SHAPES; s++)
        for (int axis = -SHAPES[s].ndim; axis < SHAPES[s].ndim; axis++)
          for (int keep = 0; keep < 2; keep++)
            expect_reduce(kind, t_randn_next(DTYPES[d], SHAPES[s]), axis, keep, "");
}

Test(reduce, output_shapes) {
  hy_tensor *x = t_randn(HY_F64, HY_SHAPE(2, 3, 5), 1);
  cr_assert(hy_same_shape(hy_sum(x, 1, true), hy_zeros(HY_F64, HY_SHAPE(2, 1, 5))));
  cr_assert(hy_same_shape(hy_mean(x, -1, false), hy_zeros(HY_F64, HY_SHAPE(2, 3))));
  cr_assert(hy_same_shape(hy_max(x, 0, false), hy_zeros(HY_F64, HY_SHAPE(3, 5))));
  cr_assert(hy_same_shape(hy_sum_all(x), hy_zeros(HY_F64, HY_SHAPE(1))));
  hy_tensor *v = hy_sum(t_randn(HY_F64, HY_SHAPE(4), 2), 0, false);
  cr_assert(v->ndim == 0 && hy_numel(v) == 1, "a 1-d sum without keepdim is a scalar, got %s",
            hy_describe(v));
}

Test(reduce, views) {
  for (int d = 0; d < 2; d++)
    for (int kind = 0; kind < 3; kind++) {
      hy_tensor *x = t_randn_next(DTYPES[d], HY_SHAPE(5, 3, 7));
      hy_tensor *t = hy_transpose(x, 0, 2), *s = hy_slice(x, 2, 1, 6);
      for (int axis = 0; axis < 3; axis++) {
        expect_reduce(kind, t, axis, false, "transposed");
        expect_reduce(kind, s, axis, true, "sliced");
      }
    }
}

Test(reduce, sum_all) {
  static const hy_shape shapes[] = {HY_SHAPE(1), HY_SHAPE(7), HY_SHAPE(3, 5), HY_SHAPE(2, 3, 5, 7)};
  for (int d = 0; d < 2; d++)
    for (int s = 0; s < 4; s++) {
      /* Positive terms, so the sum has no cancellation: 210 terms err by at most 210 ulp in f32
       * in the worst case, ~sqrt(210) typically, under 1e-5 either way. */
      hy_tensor *x = t_uniform_next(DTYPES[d], shapes[s], 0.5, 1.5);
      hy_tensor *ref = hy_empty(HY_F64, HY_SHAPE(1));
      double acc = 0;
      for (int64_t i = 0; i < hy_numel(x); i++) acc += hy_get(x, i);
      hy_set(ref, 0, acc);
      t_expect_close(hy_sum_all(x), ref, t_tol(DTYPES[d], 1e-12, 1e-5), "sum_all");
      t_expect_close(hy_sum_all(hy_transpose(x, 0, x->ndim - 1)), ref,
                     t_tol(DTYPES[d], 1e-12, 1e-5), "sum_all transposed");
    }
}

/* Ties: the gradient goes to the first maximal element, and only to it. */
Test(reduce, max_gradient_goes_to_first_maximum) {
  hy_tensor *x = t_param(hy_empty(HY_F64, HY_SHAPE(2, 4)));
  const double v[] = {1, 3, 3, 2, 5, 5, 5, 5};
  for (int i = 0; i < 8; i++) hy_set(x, i, v[i]);
  hy_tensor *y = hy_max(x, 1, false);
  cr_assert(hy_get(y, 0) == 3 && hy_get(y, 1) == 5);
  hy_backward(hy_sum_all(y));
  const double want[] = {0, 1, 0, 0, 1, 0, 0, 0};
  for (int i = 0; i < 8; i++) cr_expect(hy_get(x->grad, i) == want[i], "grad[%d]", i);
  /* Over axis 0, same rule. */
  x->grad = NULL;
  hy_backward(hy_sum_all(hy_max(x, 0, true)));
  const double want0[] = {0, 0, 0, 0, 1, 1, 1, 1};
  for (int i = 0; i < 8; i++) cr_expect(hy_get(x->grad, i) == want0[i], "axis 0 grad[%d]", i);
}

typedef struct {
  int kind, axis;
  bool keepdim, view;
} reduce_ctx;

static hy_tensor *reduce_gc(hy_tensor **in, void *ctx) {
  const reduce_ctx *c = ctx;
  return run(c->kind, c->view ? hy_transpose(in[0], 0, -1) : in[0], c->axis, c->keepdim);
}

static hy_tensor *sum_all_gc(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_sum_all(in[0]);
}

static hy_tensor *sum_all_view_gc(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_sum_all(hy_slice(hy_transpose(in[0], 0, 1), 0, 1, 4));
}

Test(reduce, gradcheck) {
  /* Distinct normal values: the maxima are unique and far (> step) from the runners-up. */
  for (int kind = 0; kind < 3; kind++)
    for (int axis = -3; axis < 3; axis++)
      for (int k = 0; k < 4; k++) {
        reduce_ctx c = {kind, axis, k & 1, k >> 1};
        hy_tensor *x = t_param(t_randn_next(HY_F64, HY_SHAPE(3, 4, 5)));
        char name[64];
        snprintf(name, sizeof name, "%s axis %d keepdim %d view %d", NAMES[kind], axis, k & 1,
                 k >> 1);
        t_expect_gradcheck(reduce_gc, &c, 1, &x, name);
      }
  hy_tensor *x = t_param(t_randn(HY_F64, HY_SHAPE(3, 5), 1));
  t_expect_gradcheck(sum_all_gc, NULL, 1, &x, "sum_all");
  t_expect_gradcheck(sum_all_view_gc, NULL, 1, &x, "sum_all of a view");
}

/* The threaded paths: 33540 elements, gradients against the plain rule (1, 1/n, or one-hot). */
Test(reduce, backward_large_against_loop) {
  for (int d = 0; d < 2; d++)
    for (int kind = 0; kind < 3; kind++)
      for (int axis = 0; axis < 3; axis++) {
        hy_dtype dt = DTYPES[d];
        hy_tensor *x = t_param(t_randn_next(dt, HY_SHAPE(2, 129, 130)));
        hy_tensor *y = run(kind, x, axis, true), *gy = t_randn_next(dt, hy_shape_of(y));
        hy_backward_with(y, gy);
        hy_tensor *ref = hy_empty(HY_F64, hy_shape_of(x));
        int64_t idx[HY_MAX_DIMS], n = x->shape[axis];
        for (int64_t f = 0; f < hy_numel(x); f++) {
          t_unravel(f, 3, x->shape, idx);
          int64_t j = idx[axis];
          idx[axis] = 0;
          double g = t_at(gy, idx), w = kind == MEAN ? 1.0 / (double)n : 1.0;
          if (kind == MAX) { /* the first maximum along the axis */
            int64_t best = 0;
            double m = -INFINITY;
            for (int64_t i = 0; i < n; i++) {
              idx[axis] = i;
              if (t_at(x, idx) > m) m = t_at(x, idx), best = i;
            }
            w = best == j;
          }
          hy_set(ref, f, g * w);
        }
        char name[64];
        snprintf(name, sizeof name, "%s %s backward axis %d", hy_dtype_name(dt), NAMES[kind], axis);
        t_expect_close(x->grad, ref, t_tol(dt, 1e-12, 1e-5), name);
      }
}

Test(reduce, deterministic) {
  hy_tensor *x = t_randn(HY_F32, HY_SHAPE(2, 129, 130), 1);
  for (int kind = 0; kind < 3; kind++)
    for (int axis = 0; axis < 3; axis++)
      t_expect_same_bits(run(kind, x, axis, false), run(kind, x, axis, false), NAMES[kind]);
  t_expect_same_bits(hy_sum_all(x), hy_sum_all(x), "sum_all");
}

static void sum_bad_axis(void) { hy_sum(hy_zeros(HY_F64, HY_SHAPE(2, 3)), 2, false); }
static void max_empty(void) { hy_max(hy_zeros(HY_F64, HY_SHAPE(2, 0)), 1, false); }
static void mean_ints(void) { hy_mean(hy_zeros(HY_I32, HY_SHAPE(4, 2)), 0, false); }

Test(reduce, bad_use_aborts) {
  t_expect_abort(sum_bad_axis, 3, (const char *[]){"sum", "axis 2", "[2, 3]"});
  t_expect_abort(max_empty, 2, (const char *[]){"max", "[2, 0]"});
  t_expect_abort(mean_ints, 2, (const char *[]){"mean", "[4, 2] i32"});
}
