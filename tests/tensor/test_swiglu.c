/* swiglu: silu(g) * u elementwise, on packed tensors and on views whose rows are contiguous (the
 * halves of one projection). On the CPU the bits of hy_mul(hy_silu(g), u), forward and both
 * gradients, in f32 and f64; float64 gradient checks (packed, halves of one tensor, g = u,
 * transposed views that go in as copies); bad use aborts. */
#include "tests/support.h"

#include <math.h>
#include <stdio.h>

static const hy_dtype DTYPES[] = {HY_F32, HY_F64};

/* How g and u are made from the inputs. */
typedef enum {
  PACKED,     /* in[0], in[1] */
  HALVES,     /* the two halves of the last axis of in[0] (a [.., 2 h] projection) */
  SAME,       /* g = u = in[0] */
  TRANSPOSED, /* in[0] and in[1] with their last two axes swapped: rows not contiguous */
} layout;

static void make(layout l, hy_tensor **in, hy_tensor **g, hy_tensor **u) {
  switch (l) {
  case PACKED: *g = in[0], *u = in[1]; return;
  case HALVES: {
    int64_t h = in[0]->shape[in[0]->ndim - 1] / 2;
    *g = hy_slice(in[0], -1, 0, h), *u = hy_slice(in[0], -1, h, 2 * h);
    return;
  }
  case SAME: *g = *u = in[0]; return;
  case TRANSPOSED: *g = hy_transpose(in[0], -1, -2), *u = hy_transpose(in[1], -1, -2); return;
  }
}

static void expect_same_as_unfused(hy_dtype dt, layout l, hy_shape s) {
  char name[128];
  snprintf(name, sizeof name, "swiglu %s layout %d shape [%lld, .., %lld]", hy_dtype_name(dt), l,
           (long long)s.d[0], (long long)s.d[s.ndim - 1]);
  hy_tensor *a = t_randn_next(dt, s), *b = t_randn_next(dt, s), *ref_in[2], *in[2], *g, *u;
  for (int i = 0; i < 2; i++) {
    ref_in[i] = t_param(t_cast(i ? b : a, dt));
    in[i] = t_param(t_cast(i ? b : a, dt));
  }
  make(l, ref_in, &g, &u);
  hy_tensor *ref = hy_mul(hy_silu(g), u);
  make(l, in, &g, &u);
  hy_tensor *y = hy_swiglu(g, u);
  char what[160];
  snprintf(what, sizeof what, "%s: forward", name);
  t_expect_same_bits(y, ref, what);
  hy_tensor *gy = t_randn_next(dt, hy_shape_of(y));
  hy_backward_with(ref, gy);
  hy_backward_with(y, gy);
  for (int i = 0; i < 2; i++) {
    if (!ref_in[i]->grad) continue;
    snprintf(what, sizeof what, "%s: gradient of input %d", name, i);
    t_expect_same_bits(in[i]->grad, ref_in[i]->grad, what);
  }
}

Test(swiglu, same_bits_as_silu_then_mul) {
  for (int k = 0; k < 2; k++) {
    hy_dtype dt = DTYPES[k];
    expect_same_as_unfused(dt, PACKED, HY_SHAPE(7));
    expect_same_as_unfused(dt, PACKED, HY_SHAPE(3, 5, 11));
    expect_same_as_unfused(dt, PACKED, HY_SHAPE(300, 130)); /* threaded */
    expect_same_as_unfused(dt, HALVES, HY_SHAPE(2, 5, 22));
    expect_same_as_unfused(dt, HALVES, HY_SHAPE(300, 260));
    expect_same_as_unfused(dt, SAME, HY_SHAPE(4, 9));
    expect_same_as_unfused(dt, TRANSPOSED, HY_SHAPE(3, 5, 6));
  }
}

/* Large |g| on both sides: silu tends to g and to 0, its slope to 1 and to 0, with no NaN. */
Test(swiglu, saturated_gates) {
  hy_tensor *g = hy_empty(HY_F32, HY_SHAPE(64)), *u = t_param(t_randn_next(HY_F32, HY_SHAPE(64)));
  for (int64_t i = 0; i < 64; i++) hy_set(g, i, (i % 2 ? 1 : -1) * (30.0 + 40.0 * (double)i));
  t_param(g);
  hy_tensor *y = hy_swiglu(g, u);
  hy_backward(hy_sum_all(y));
  for (int64_t i = 0; i < 64; i++) {
    double gv = hy_get(g, i), uv = hy_get(u, i);
    double want = gv > 0 ? gv * uv : 0, slope = gv > 0 ? uv : 0;
    cr_assert(fabs(hy_get(y, i) - want) <= 1e-6 * fabs(want) + 1e-9, "y[%lld]", (long long)i);
    cr_assert(fabs(hy_get(g->grad, i) - slope) <= 1e-6 * fabs(slope) + 1e-9, "g'[%lld]",
              (long long)i);
    cr_assert(fabs(hy_get(u->grad, i) - (gv > 0 ? gv : 0)) <= 1e-6 * fabs(gv) + 1e-9, "u'[%lld]",
              (long long)i);
  }
}

static hy_tensor *swiglu_gc(hy_tensor **in, void *ctx) {
  hy_tensor *g, *u;
  make(*(const layout *)ctx, in, &g, &u);
  return hy_swiglu(g, u);
}

Test(swiglu, gradcheck) {
  const layout layouts[] = {PACKED, HALVES, SAME, TRANSPOSED};
  for (int i = 0; i < 4; i++) {
    hy_shape s = layouts[i] == HALVES ? HY_SHAPE(2, 3, 10) : HY_SHAPE(2, 3, 5);
    hy_tensor *in[2] = {t_param(hy_scale(t_randn_next(HY_F64, s), 3.0)),
                        t_param(t_randn_next(HY_F64, s))};
    char name[64];
    snprintf(name, sizeof name, "swiglu layout %d", layouts[i]);
    t_expect_gradcheck(swiglu_gc, (void *)&layouts[i], 2, in, name);
  }
  layout l = PACKED; /* one gradient alone */
  hy_tensor *only_u[2] = {t_randn_next(HY_F64, HY_SHAPE(4, 3)),
                          t_param(t_randn_next(HY_F64, HY_SHAPE(4, 3)))};
  t_expect_gradcheck(swiglu_gc, &l, 2, only_u, "swiglu, u only");
  hy_tensor *only_g[2] = {t_param(t_randn_next(HY_F64, HY_SHAPE(4, 3))),
                          t_randn_next(HY_F64, HY_SHAPE(4, 3))};
  t_expect_gradcheck(swiglu_gc, &l, 2, only_g, "swiglu, g only");
}

static void shapes_differ(void) {
  hy_swiglu(hy_zeros(HY_F32, HY_SHAPE(3, 4)), hy_zeros(HY_F32, HY_SHAPE(4, 3)));
}
static void dtypes_differ(void) {
  hy_swiglu(hy_zeros(HY_F32, HY_SHAPE(3, 4)), hy_zeros(HY_F64, HY_SHAPE(3, 4)));
}

Test(swiglu, bad_use_aborts) {
  t_expect_abort(shapes_differ, 3, (const char *[]){"swiglu", "[3, 4]", "[4, 3]"});
  t_expect_abort(dtypes_differ, 3, (const char *[]){"swiglu", "[3, 4] f32", "[3, 4] f64"});
}
