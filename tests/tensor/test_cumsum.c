/* cumsum, forward and reverse, over each axis: against plain loops in double, in f32 and f64;
 * backward of a large tensor against the plain rule; gradcheck; bad use; determinism. */
#include "tests/support.h"

#include <stdio.h>

static const hy_dtype DTYPES[] = {HY_F32, HY_F64};

/* y[..., j, ...] = sum over i <= j (i >= j reversed) of x[..., i, ...]. */
static hy_tensor *ref_cumsum(const hy_tensor *x, int axis, bool reverse) {
  int a = axis < 0 ? axis + x->ndim : axis;
  hy_tensor *ref = hy_empty(HY_F64, hy_shape_of(x));
  int64_t idx[HY_MAX_DIMS];
  for (int64_t f = 0; f < hy_numel(x); f++) {
    t_unravel(f, x->ndim, x->shape, idx);
    int64_t j = idx[a];
    double s = 0;
    for (int64_t i = 0; i < x->shape[a]; i++) {
      if (reverse ? i < j : i > j) continue;
      idx[a] = i;
      s += t_at(x, idx);
    }
    hy_set(ref, f, s);
  }
  return ref;
}

static void expect_cumsum(hy_tensor *x, int axis, bool reverse, const char *what) {
  char name[160];
  snprintf(name, sizeof name, "cumsum %s axis %d%s: %s", what, axis, reverse ? " reverse" : "",
           hy_describe(x));
  /* f64: the same running sum, possibly in another order, a few ulp. f32: running sums of up to
   * 130 normal numbers, ~sqrt(n) ulp of the terms, under 1e-5 of the largest output. */
  t_expect_close(hy_cumsum(x, axis, reverse), ref_cumsum(x, axis, reverse),
                 t_tol(x->dtype, 1e-12, 1e-5), name);
}

/* Negative axes on all but the large shape (its reference loop is quadratic in the axis). */
Test(cumsum, every_axis_both_directions) {
  static const hy_shape shapes[] = {HY_SHAPE(1),       HY_SHAPE(13),         HY_SHAPE(3, 7),
                                    HY_SHAPE(3, 1, 7), HY_SHAPE(2, 3, 5, 7), HY_SHAPE(2, 129, 130)};
  for (int d = 0; d < 2; d++)
    for (int s = 0; s < 6; s++)
      for (int axis = s < 5 ? -shapes[s].ndim : 0; axis < shapes[s].ndim; axis++)
        for (int rev = 0; rev < 2; rev++)
          expect_cumsum(t_randn_next(DTYPES[d], shapes[s]), axis, rev, "");
}

Test(cumsum, views) {
  for (int d = 0; d < 2; d++) {
    hy_tensor *x = t_randn_next(DTYPES[d], HY_SHAPE(5, 3, 7));
    for (int axis = 0; axis < 3; axis++)
      for (int rev = 0; rev < 2; rev++) {
        expect_cumsum(hy_transpose(x, 0, 2), axis, rev, "transposed");
        expect_cumsum(hy_slice(x, 2, 2, 5), axis, rev, "sliced");
      }
  }
}

/* The adjoint of a prefix sum is the suffix sum of the output gradient, and the other way round:
 * gx[j] = sum over i >= j (i <= j reversed) of gy[i]. Large, so the threaded loop runs. */
Test(cumsum, backward_large_against_loop) {
  for (int d = 0; d < 2; d++)
    for (int axis = 0; axis < 3; axis++)
      for (int rev = 0; rev < 2; rev++) {
        hy_dtype dt = DTYPES[d];
        hy_tensor *x = t_param(t_randn_next(dt, HY_SHAPE(2, 129, 130)));
        hy_tensor *gy = t_randn_next(dt, HY_SHAPE(2, 129, 130));
        hy_backward_with(hy_cumsum(x, axis, rev), gy);
        char name[64];
        snprintf(name, sizeof name, "%s cumsum backward axis %d rev %d", hy_dtype_name(dt), axis,
                 rev);
        t_expect_close(x->grad, ref_cumsum(gy, axis, !rev), t_tol(dt, 1e-12, 1e-5), name);
      }
}

typedef struct {
  int axis;
  bool reverse, view;
} cumsum_ctx;

static hy_tensor *cumsum_gc(hy_tensor **in, void *ctx) {
  const cumsum_ctx *c = ctx;
  return hy_cumsum(c->view ? hy_transpose(in[0], 0, 2) : in[0], c->axis, c->reverse);
}

Test(cumsum, gradcheck) {
  for (int axis = -3; axis < 3; axis++)
    for (int k = 0; k < 4; k++) {
      cumsum_ctx c = {axis, k & 1, k >> 1};
      hy_tensor *x = t_param(t_randn_next(HY_F64, HY_SHAPE(3, 4, 5)));
      char name[64];
      snprintf(name, sizeof name, "cumsum axis %d reverse %d view %d", axis, k & 1, k >> 1);
      t_expect_gradcheck(cumsum_gc, &c, 1, &x, name);
    }
}

Test(cumsum, deterministic) {
  hy_tensor *x = t_randn(HY_F32, HY_SHAPE(2, 129, 130), 1);
  for (int axis = 0; axis < 3; axis++)
    for (int rev = 0; rev < 2; rev++)
      t_expect_same_bits(hy_cumsum(x, axis, rev), hy_cumsum(x, axis, rev), "cumsum");
}

static void cumsum_bad_axis(void) { hy_cumsum(hy_zeros(HY_F32, HY_SHAPE(4, 5)), -3, false); }
static void cumsum_ints(void) { hy_cumsum(hy_zeros(HY_I32, HY_SHAPE(4, 5)), 0, true); }

Test(cumsum, bad_use_aborts) {
  t_expect_abort(cumsum_bad_axis, 3, (const char *[]){"cumsum", "axis -3", "[4, 5]"});
  t_expect_abort(cumsum_ints, 2, (const char *[]){"cumsum", "[4, 5] i32"});
}
