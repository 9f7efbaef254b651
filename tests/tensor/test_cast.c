/* bf16 and casts on the CPU: hy_bf16_from_float against a rounding written from its definition
 * (the nearer of the two neighbours, ties to the even one) over chosen and random bit patterns,
 * NaN, infinities, overflow to infinity and subnormals; hy_bf16_to_float on all 65536 patterns;
 * hy_cast between f32, f64 and bf16 with its gradients; hy_convert_into between every pair of
 * float dtypes over strided views, overwriting and accumulating; views and copies of bf16 tensors
 * on the CPU, with gradients through them. */
#include "tensor/op.h" /* hy_convert_into, private to tensor/ */
#include "tests/support.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static uint32_t bits_of(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}

static float float_of(uint32_t u) {
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

/* The value of bf16 pattern h's magnitude bits, where 0x7f80 (one past the largest finite) stands
 * for 2^128: the distance to it decides overflow, as for any other neighbour. */
static double magnitude(uint32_t h) {
  return h >= 0x7f80u ? ldexp(1, 128) : (double)float_of(h << 16);
}

/* Round-to-nearest-even from its definition, for a finite x: of the two bf16 neighbours of |x|
 * (truncated and one up), the nearer; on a tie, the one with an even last bit. */
static hy_bf16 reference_round(float x) {
  uint32_t u = bits_of(x), sign = u & 0x80000000u, mag = u & 0x7fffffffu;
  uint32_t lo = mag >> 16, hi = lo + 1;
  double v = fabs((double)x), d_lo = v - magnitude(lo), d_hi = magnitude(hi) - v;
  uint32_t pick = d_lo < d_hi ? lo : d_hi < d_lo ? hi : (lo & 1u) ? hi : lo;
  return (hy_bf16)((sign >> 16) | pick);
}

static void expect_rounds(uint32_t u) {
  hy_bf16 got = hy_bf16_from_float(float_of(u)), want = reference_round(float_of(u));
  cr_assert(got == want, "bf16 of %#010x (%.9g): %#06x, expected %#06x", u, float_of(u), got, want);
}

Test(bf16, rounds_to_nearest_even) {
  /* around 1 (bf16 keeps 7 bits after the point: its step there is 2^-7) */
  struct {
    float x;
    float want;
  } cases[] = {
      {1.0f, 1.0f},
      {1.0f + 0x1p-8f, 1.0f},                           /* tie: down to the even 1 */
      {1.0f + 0x1p-8f + 0x1p-20f, 1.0f + 0x1p-7f},      /* just above the tie */
      {1.0f + 0x1p-8f - 0x1p-20f, 1.0f},                /* just below */
      {1.0f + 0x1p-7f + 0x1p-8f, 1.0f + 0x1p-6f},       /* tie: up to the even neighbour */
      {-(1.0f + 0x1p-7f + 0x1p-8f), -(1.0f + 0x1p-6f)}, /* the same for a negative value */
      {2.0f - 0x1p-9f, 2.0f},                           /* rounds up into the next binade */
      {0.0f, 0.0f},
      {-0.0f, -0.0f},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    hy_bf16 h = hy_bf16_from_float(cases[i].x);
    float back = hy_bf16_to_float(h);
    cr_assert(bits_of(back) == bits_of(cases[i].want), "bf16 of %.9g is %.9g, expected %.9g",
              cases[i].x, back, cases[i].want);
    expect_rounds(bits_of(cases[i].x));
  }
  /* every tie and both its neighbours, in every binade, both signs */
  for (uint32_t e = 0; e < 255; e++)
    for (uint32_t m = 0; m < 0x80u; m += 5)
      for (uint32_t s = 0; s < 2; s++) {
        uint32_t tie = s << 31 | e << 23 | m << 16 | 0x8000u;
        expect_rounds(tie);
        expect_rounds(tie - 1);
        expect_rounds(tie + 1);
        expect_rounds(tie | 0x10000u); /* the tie above an odd last bit */
      }
  /* random finite patterns */
  hy_rng r = hy_rng_new(7);
  for (int i = 0; i < 1000000; i++) {
    uint32_t u = (uint32_t)hy_rng_u64(&r);
    if ((u & 0x7f800000u) != 0x7f800000u) expect_rounds(u);
  }
}

Test(bf16, nan_infinity_and_overflow) {
  const uint32_t nans[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u,
                           0x7fbfffffu, 0xff800001u, 0x7fffffffu};
  for (size_t i = 0; i < sizeof nans / sizeof *nans; i++) {
    hy_bf16 h = hy_bf16_from_float(float_of(nans[i]));
    cr_assert(isnan(hy_bf16_to_float(h)), "NaN %#010x became %#06x", nans[i], h);
    cr_assert((h & 0x8000u) == ((nans[i] >> 16) & 0x8000u), "NaN %#010x lost its sign", nans[i]);
  }
  cr_assert(hy_bf16_from_float(INFINITY) == 0x7f80u && hy_bf16_from_float(-INFINITY) == 0xff80u);
  cr_assert(hy_bf16_to_float(0x7f80u) == INFINITY && hy_bf16_to_float(0xff80u) == -INFINITY);
  /* the largest finite bf16 is 0x7f7f; from half a step above it (a tie, to the even 0x7f80)
   * every f32 rounds to infinity */
  cr_assert(hy_bf16_from_float(float_of(0x7f7f7fffu)) == 0x7f7fu);
  cr_assert(hy_bf16_from_float(float_of(0x7f7f8000u)) == 0x7f80u);
  cr_assert(hy_bf16_from_float(FLT_MAX) == 0x7f80u);
  cr_assert(hy_bf16_from_float(-FLT_MAX) == 0xff80u);
  for (uint32_t u = 0x7f7f0000u; u < 0x7f800000u; u += 0x101u) expect_rounds(u);
}

Test(bf16, subnormals) {
  cr_assert(hy_bf16_from_float(float_of(0x00000001u)) == 0x0000u, "the smallest f32 to +0");
  cr_assert(hy_bf16_from_float(float_of(0x80000001u)) == 0x8000u, "and its negative to -0");
  cr_assert(hy_bf16_from_float(float_of(0x00008000u)) == 0x0000u, "a tie down to the even 0");
  cr_assert(hy_bf16_from_float(float_of(0x00018000u)) == 0x0002u, "a tie up to the even 2");
  cr_assert(hy_bf16_from_float(float_of(0x00010000u)) == 0x0001u, "the smallest bf16, exact");
  cr_assert(hy_bf16_to_float(0x0001u) == ldexpf(1, -133), "bf16 0x0001 is 2^-133");
  cr_assert(hy_bf16_from_float(float_of(0x007fffffu)) == 0x0080u, "up to the smallest normal");
  for (uint32_t u = 0; u < 0x00800000u; u += 0x1f3u) {
    expect_rounds(u);
    expect_rounds(u | 0x80000000u);
  }
}

Test(bf16, to_float_is_exact_and_round_trips) {
  for (uint32_t h = 0; h < 0x10000u; h++) {
    float f = hy_bf16_to_float((hy_bf16)h);
    if ((h & 0x7fffu) > 0x7f80u) {
      cr_assert(isnan(f), "NaN pattern %#06x", h);
      continue;
    }
    cr_assert(bits_of(f) == h << 16, "bf16 %#06x gave f32 %#010x", h, bits_of(f));
    cr_assert(hy_bf16_from_float(f) == h, "bf16 %#06x does not round-trip", h);
  }
}

/* ---- hy_cast ---- */

static double round_to(hy_dtype dtype, double v) {
  switch (dtype) {
  case HY_F32: return (float)v;
  case HY_BF16: return hy_bf16_to_float(hy_bf16_from_float((float)v));
  default: return v;
  }
}

static const hy_dtype FLOATS[] = {HY_F32, HY_F64, HY_BF16};

Test(cast, values_between_every_pair) {
  hy_tensor *x = t_randn(HY_F64, HY_SHAPE(3, 37), 11);
  for (int i = 0; i < hy_numel(x); i++) hy_set(x, i, hy_get(x, i) * pow(10, i % 9 - 4));
  for (int s = 0; s < 3; s++)
    for (int d = 0; d < 3; d++) {
      hy_tensor *src = t_cast(x, FLOATS[s]);
      hy_tensor *y = hy_cast(src, FLOATS[d]);
      cr_assert(y->dtype == FLOATS[d] && hy_same_shape(y, src) && hy_is_contiguous(y));
      if (s == d) cr_assert(y == src, "a cast to its own dtype is the tensor itself");
      for (int64_t i = 0; i < hy_numel(x); i++)
        cr_assert(hy_get(y, i) == round_to(FLOATS[d], hy_get(src, i)),
                  "%s to %s, element %lld: %.17g from %.17g", hy_dtype_name(FLOATS[s]),
                  hy_dtype_name(FLOATS[d]), (long long)i, hy_get(y, i), hy_get(src, i));
    }
}

/* f64 -> bf16 -> f32, the f32 result times fixed weights w, summed: the gradient comes back
 * rounded to each dtype it passes (bf16 here), into x in f64. */
Test(cast, gradient_passes_through_each_dtype) {
  hy_tensor *x = t_param(t_randn(HY_F64, HY_SHAPE(5, 9), 12));
  hy_tensor *w = t_randn(HY_F32, HY_SHAPE(5, 9), 13);
  hy_tensor *b = hy_cast(x, HY_BF16);
  hy_tensor *f = hy_cast(b, HY_F32);
  hy_tensor *loss = hy_sum_all(hy_mul(f, w));
  cr_assert(b->requires_grad && f->requires_grad && b->dtype == HY_BF16);
  hy_backward(loss);
  cr_assert(x->grad && x->grad->dtype == HY_F64);
  for (int64_t i = 0; i < hy_numel(x); i++) {
    cr_assert(hy_get(f, i) == round_to(HY_BF16, hy_get(x, i)));
    cr_assert(hy_get(x->grad, i) == round_to(HY_BF16, hy_get(w, i)), "gradient %lld", (long long)i);
  }
}

/* x used by two casts and directly: the three gradients add up in x. */
Test(cast, gradients_of_several_uses_add) {
  hy_tensor *x = t_param(t_randn(HY_F32, HY_SHAPE(4, 6), 14));
  hy_tensor *w = t_randn(HY_F64, HY_SHAPE(4, 6), 15);
  hy_tensor *y = hy_add(hy_mul(hy_cast(x, HY_F64), w), hy_cast(hy_cast(x, HY_F64), HY_F64));
  hy_tensor *loss = hy_add(hy_sum_all(y), hy_cast(hy_sum_all(x), HY_F64));
  hy_backward(loss);
  for (int64_t i = 0; i < hy_numel(x); i++) {
    double want = hy_get(w, i) + 2; /* summed in f32, in some order */
    cr_assert(fabs(hy_get(x->grad, i) - want) <= 1e-6 * (fabs(hy_get(w, i)) + 2),
              "element %lld: %.9g vs %.9g", (long long)i, hy_get(x->grad, i), want);
  }
}

static void cast_to_int(void) { hy_cast(t_randn(HY_F32, HY_SHAPE(3), 1), HY_I32); }
static void cast_of_ints(void) { hy_cast(t_ints(HY_SHAPE(2), (int32_t[]){1, 2}), HY_F32); }

Test(cast, refuses_non_float_dtypes) {
  t_expect_abort(cast_to_int, 2, (const char *[]){"cast", "not a float dtype"});
  t_expect_abort(cast_of_ints, 2, (const char *[]){"cast", "float"});
}

/* ---- hy_convert_into ---- */

/* dst (+)= src between two strided views: a transposed [7, 5] source into a [7, 5] slice of a
 * wider destination, whose other columns must stay as they were. */
Test(cast, convert_into_strided_views) {
  for (int s = 0; s < 3; s++)
    for (int d = 0; d < 3; d++)
      for (int acc = 0; acc < 2; acc++) {
        hy_tensor *base = t_cast(t_randn(HY_F64, HY_SHAPE(5, 7), 16), FLOATS[s]);
        hy_tensor *src = hy_transpose(base, 0, 1); /* [7, 5], strides (1, 7) */
        hy_tensor *wide = t_cast(t_randn(HY_F64, HY_SHAPE(7, 9), 17), FLOATS[d]);
        hy_tensor *before = t_cast(wide, HY_F64);
        hy_tensor *dst = hy_slice(wide, 1, 2, 7); /* [7, 5], strides (9, 1) */
        hy_convert_into(dst, src, acc);
        for (int64_t r = 0; r < 7; r++)
          for (int64_t c = 0; c < 9; c++) {
            double old = hy_get(before, r * 9 + c), got = hy_get(wide, r * 9 + c), want = old;
            if (c >= 2 && c < 7) {
              double v = t_at(src, (int64_t[]){r, c - 2});
              want = round_to(FLOATS[d], acc ? old + v : v);
            }
            cr_assert(got == want, "%s into %s%s at (%lld, %lld): %.17g, expected %.17g",
                      hy_dtype_name(FLOATS[s]), hy_dtype_name(FLOATS[d]),
                      acc ? ", accumulating" : "", (long long)r, (long long)c, got, want);
          }
      }
}

static void convert_shape_mismatch(void) {
  hy_convert_into(hy_empty(HY_BF16, HY_SHAPE(3, 4)), t_randn(HY_F32, HY_SHAPE(4, 3), 1), false);
}

Test(cast, convert_into_checks_shapes) {
  t_expect_abort(convert_shape_mismatch, 2, (const char *[]){"cast", "shapes differ"});
}

/* ---- bf16 data on the CPU: views and copies ---- */

/* x (f32) -> bf16 -> transpose -> contiguous -> concat with itself -> f32 -> times w -> sum:
 * views and copies of bf16 tensors on the CPU, and their gradients back in bf16 (each copy's
 * gradient rounds to bf16: the two halves of the concat add in bf16). */
Test(cast, bf16_views_and_copies_on_the_cpu) {
  hy_tensor *x = t_param(t_randn(HY_F32, HY_SHAPE(3, 5), 18));
  hy_tensor *w = t_randn(HY_F32, HY_SHAPE(10, 3), 19);
  hy_tensor *b = hy_cast(x, HY_BF16);
  hy_tensor *t = hy_contiguous(hy_transpose(b, 0, 1));            /* [5, 3] */
  hy_tensor *c = hy_concat(2, (hy_tensor *[]){t, hy_copy(t)}, 0); /* [10, 3] */
  hy_tensor *r = hy_reshape(hy_slice(c, 0, 0, 10), HY_SHAPE(30));
  cr_assert(t->dtype == HY_BF16 && c->dtype == HY_BF16 && r->dtype == HY_BF16);
  hy_tensor *f = hy_reshape(hy_cast(r, HY_F32), HY_SHAPE(10, 3));
  for (int64_t i = 0; i < 10; i++)
    for (int64_t j = 0; j < 3; j++)
      cr_assert(hy_get(f, i * 3 + j) == round_to(HY_BF16, hy_get(x, j * 5 + i % 5)));
  hy_backward(hy_sum_all(hy_mul(f, w)));
  for (int64_t i = 0; i < 3; i++)
    for (int64_t j = 0; j < 5; j++) {
      double g1 = round_to(HY_BF16, hy_get(w, j * 3 + i));
      double g2 = round_to(HY_BF16, hy_get(w, (j + 5) * 3 + i));
      double want = round_to(HY_BF16, g1 + g2);
      cr_assert(hy_get(x->grad, i * 5 + j) == want, "gradient (%lld, %lld): %.9g, expected %.9g",
                (long long)i, (long long)j, hy_get(x->grad, i * 5 + j), want);
    }
}

static void add_on_cpu_bf16(void) {
  hy_tensor *a = hy_cast(t_randn(HY_F32, HY_SHAPE(3), 1), HY_BF16);
  hy_add(a, a);
}

Test(cast, bf16_ops_refused_on_the_cpu) {
  t_expect_abort(add_on_cpu_bf16, 2, (const char *[]){"add", "bf16 tensors compute on the GPU"});
}
