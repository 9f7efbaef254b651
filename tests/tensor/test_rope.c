/* rope: rotary embedding of x [B, T, H, D], rotate-half convention. Forward against the formula
 * (channel i < D/2 pairs with i + D/2, angle (t + offset) theta^(-2i/D)) in f32 and f64; an offset
 * p at position t equals position t + p; backward (the inverse rotation) against the formula;
 * gradcheck; bad shapes; determinism. */
#include "tests/support.h"

#include <math.h>
#include <stdio.h>

static const hy_dtype DTYPES[] = {HY_F32, HY_F64};

/* y_i = x_i cos a - x_{i+D/2} sin a,  y_{i+D/2} = x_{i+D/2} cos a + x_i sin a,
 * a = (t + offset) theta^(-2i/D), for i < D/2. `sign` -1 rotates the other way. */
static hy_tensor *ref_rope(const hy_tensor *x, int64_t offset, double theta, double sign) {
  hy_tensor *ref = hy_empty(HY_F64, hy_shape_of(x));
  int64_t D = x->shape[3], half = D / 2, idx[4], pair[4];
  for (int64_t f = 0; f < hy_numel(x); f++) {
    t_unravel(f, 4, x->shape, idx);
    int64_t c = idx[3], i = c < half ? c : c - half;
    double a = (double)(idx[1] + offset) * pow(theta, -2.0 * (double)i / (double)D);
    double cs = cos(a), sn = sign * sin(a);
    for (int k = 0; k < 4; k++) pair[k] = idx[k];
    pair[3] = c < half ? c + half : c - half;
    double v = t_at(x, idx), p = t_at(x, pair);
    hy_set(ref, f, c < half ? v * cs - p * sn : v * cs + p * sn);
  }
  return ref;
}

static void expect_rope(hy_tensor *x, int64_t offset, double theta, const char *what) {
  char name[160];
  snprintf(name, sizeof name, "rope %s: %s, offset %lld, theta %g", what, hy_describe(x),
           (long long)offset, theta);
  /* Angles are computed in double by both; f32 rounds cos, sin, two products and a sum. */
  t_expect_close(hy_rope(x, offset, theta), ref_rope(x, offset, theta, 1),
                 t_tol(x->dtype, 1e-12, 1e-5), name);
}

static const hy_shape SHAPES[] = {HY_SHAPE(1, 1, 1, 2),  HY_SHAPE(2, 5, 3, 4),
                                  HY_SHAPE(1, 7, 2, 8),  HY_SHAPE(2, 3, 1, 6),
                                  HY_SHAPE(1, 13, 3, 2), HY_SHAPE(2, 33, 4, 130)};

Test(rope, shapes_offsets_thetas) {
  static const int64_t offsets[] = {0, 3, 1000};
  static const double thetas[] = {10000, 100, 500000};
  for (int d = 0; d < 2; d++)
    for (int s = 0; s < 6; s++)
      for (int o = 0; o < 3; o++)
        expect_rope(t_randn_next(DTYPES[d], SHAPES[s]), offsets[o], thetas[(s + o) % 3], "");
}

Test(rope, views) {
  for (int d = 0; d < 2; d++) {
    hy_tensor *x = t_randn_next(DTYPES[d], HY_SHAPE(2, 3, 5, 6)); /* [B, H, T, D] */
    expect_rope(hy_transpose(x, 1, 2), 2, 10000, "transposed [B, H, T, D]");
    expect_rope(hy_slice(x, 3, 1, 5), 0, 10000, "sliced last axis");
  }
}

/* q and k sliced from one [B, T, 3 H D] projection are read in place: the same values as their
 * copies, and their gradients reach the projection. */
Test(rope, heads_of_one_projection) {
  for (int d = 0; d < 2; d++) {
    hy_dtype dt = DTYPES[d];
    int64_t B = 2, T = 5, H = 3, D = 6;
    hy_tensor *qkv = t_param(t_randn_next(dt, HY_SHAPE(B, T, 3 * H * D)));
    hy_tensor *parts[3];
    hy_split(hy_reshape(qkv, HY_SHAPE(B, T, 3 * H, D)), 2, 3, (int64_t[]){H, H, H}, parts);
    for (int i = 0; i < 2; i++) {
      cr_assert(!hy_is_contiguous(parts[i]), "the head view should be strided");
      t_expect_same_bits(hy_rope(parts[i], 3, 10000), hy_rope(hy_contiguous(parts[i]), 3, 10000),
                         "rope of a head view");
    }
    expect_rope(parts[1], 3, 10000, "k of a qkv projection");
  }
}

/* The same rows seen at positions t + p with offset 0, or at positions t with offset p. */
Test(rope, offset_p_at_t_equals_position_t_plus_p) {
  for (int d = 0; d < 2; d++)
    for (int64_t p = 1; p <= 9; p += 4) {
      hy_dtype dt = DTYPES[d];
      hy_tensor *x = t_randn_next(dt, HY_SHAPE(2, p + 7, 3, 10));
      hy_tensor *whole = hy_rope(x, 0, 10000);
      hy_tensor *tail = hy_rope(hy_slice(x, 1, p, p + 7), p, 10000);
      t_expect_close(tail, hy_slice(whole, 1, p, p + 7), t_tol(dt, 1e-12, 1e-6), "offset");
      /* and with a base offset on both sides */
      hy_tensor *whole5 = hy_rope(x, 5, 10000);
      hy_tensor *tail5 = hy_rope(hy_slice(x, 1, p, p + 7), p + 5, 10000);
      t_expect_close(tail5, hy_slice(whole5, 1, p, p + 7), t_tol(dt, 1e-12, 1e-6), "offset + 5");
    }
}

/* A rotation keeps each pair's length. */
Test(rope, keeps_pair_norms) {
  hy_tensor *x = t_randn_next(HY_F64, HY_SHAPE(2, 9, 3, 8)), *y = hy_rope(x, 4, 10000);
  for (int64_t r = 0; r < hy_numel(x) / 8; r++)
    for (int64_t i = 0; i < 4; i++) {
      double a = hy_get(x, r * 8 + i), b = hy_get(x, r * 8 + i + 4);
      double c = hy_get(y, r * 8 + i), e = hy_get(y, r * 8 + i + 4);
      cr_assert(fabs((a * a + b * b) - (c * c + e * e)) <= 1e-12 * (a * a + b * b + 1e-300));
    }
  /* Position 0 without an offset is the identity. */
  hy_tensor *x0 = t_randn_next(HY_F64, HY_SHAPE(1, 1, 2, 6));
  t_expect_close(hy_rope(x0, 0, 10000), x0, 0.0, "rope at t = 0");
}

/* The backward is the inverse rotation of the output gradient. */
Test(rope, backward_against_inverse_rotation) {
  for (int d = 0; d < 2; d++) {
    hy_dtype dt = DTYPES[d];
    hy_tensor *x = t_param(t_randn_next(dt, HY_SHAPE(2, 33, 4, 130)));
    hy_tensor *y = hy_rope(x, 7, 10000), *gy = t_randn_next(dt, hy_shape_of(y));
    hy_backward_with(y, gy);
    t_expect_close(x->grad, ref_rope(gy, 7, 10000, -1), t_tol(dt, 1e-12, 1e-5), "rope backward");
  }
}

typedef struct {
  int64_t offset;
  double theta;
  bool view;
} rope_ctx;

static hy_tensor *rope_gc(hy_tensor **in, void *ctx) {
  const rope_ctx *c = ctx;
  return hy_rope(c->view ? hy_transpose(in[0], 1, 2) : in[0], c->offset, c->theta);
}

Test(rope, gradcheck) {
  static const rope_ctx cases[] = {
      {0, 10000, false}, {3, 10000, false}, {11, 100, false}, {2, 10000, true}};
  static const hy_shape shapes[] = {HY_SHAPE(2, 5, 3, 4), HY_SHAPE(1, 7, 2, 6),
                                    HY_SHAPE(2, 3, 1, 2), HY_SHAPE(2, 3, 5, 4)};
  for (int i = 0; i < 4; i++) {
    hy_tensor *x = t_param(t_randn_next(HY_F64, shapes[i]));
    char name[64];
    snprintf(name, sizeof name, "rope offset %lld theta %g view %d", (long long)cases[i].offset,
             cases[i].theta, cases[i].view);
    t_expect_gradcheck(rope_gc, (void *)&cases[i], 1, &x, name);
  }
}

/* Heads of one projection, and x used again (its gradient fresh or accumulating when rope's
 * backward runs). */
static hy_tensor *rope_of_projection(hy_tensor **in, void *ctx) {
  (void)ctx;
  hy_tensor *parts[2];
  hy_split(hy_reshape(in[0], HY_SHAPE(2, 3, 4, 4)), 2, 2, (int64_t[]){2, 2}, parts);
  return hy_add(hy_rope(parts[0], 1, 100), hy_rope(parts[1], 1, 100));
}

static hy_tensor *rope_and_reuse(hy_tensor **in, void *ctx) {
  bool rope_first = *(const bool *)ctx;
  hy_tensor *a = rope_first ? hy_rope(in[0], 2, 100) : hy_scale(in[0], 3.0);
  hy_tensor *b = rope_first ? hy_scale(in[0], 3.0) : hy_rope(in[0], 2, 100);
  return hy_add(a, b);
}

Test(rope, gradcheck_views_and_reuse) {
  hy_tensor *qk = t_param(t_randn_next(HY_F64, HY_SHAPE(2, 3, 16)));
  t_expect_gradcheck(rope_of_projection, NULL, 1, &qk, "rope of q and k from one projection");
  for (int first = 0; first < 2; first++) {
    bool rope_first = first;
    hy_tensor *x = t_param(t_randn_next(HY_F64, HY_SHAPE(1, 3, 2, 4)));
    t_expect_gradcheck(rope_and_reuse, &rope_first, 1, &x, "rope with another use of x");
  }
}

Test(rope, deterministic) {
  hy_tensor *x = t_randn_next(HY_F32, HY_SHAPE(2, 33, 4, 130));
  t_expect_same_bits(hy_rope(x, 3, 10000), hy_rope(x, 3, 10000), "rope");
}

static void rope_odd_d(void) { hy_rope(hy_zeros(HY_F32, HY_SHAPE(1, 2, 3, 5)), 0, 10000); }
static void rope_3d(void) { hy_rope(hy_zeros(HY_F64, HY_SHAPE(2, 3, 4)), 0, 10000); }

Test(rope, bad_shapes_abort) {
  t_expect_abort(rope_odd_d, 2, (const char *[]){"rope", "[1, 2, 3, 5]"});
  t_expect_abort(rope_3d, 2, (const char *[]){"rope", "[2, 3, 4]"});
}
