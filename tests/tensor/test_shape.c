/* Shapes and views: reshape (with -1, of a non-contiguous input), transpose, slice, split, concat,
 * contiguous, copy. Values against the logical index maps written as plain loops, in f32 and f64;
 * which results are views and which are copies; gradcheck of each; bad use; determinism. */
#include "tests/support.h"

#include <stdio.h>

static const hy_dtype DTYPES[] = {HY_F32, HY_F64};

static bool shape_is(const hy_tensor *t, hy_shape s) {
  if (t->ndim != s.ndim) return false;
  for (int i = 0; i < s.ndim; i++)
    if (t->shape[i] != s.d[i]) return false;
  return true;
}

/* Element i of both in row-major order, read through each one's strides: bitwise equal. */
static void expect_same_sequence(const hy_tensor *y, const hy_tensor *x, const char *what) {
  cr_assert(hy_numel(x) == hy_numel(y), "%s: %s vs %s", what, hy_describe(y), hy_describe(x));
  int64_t iy[HY_MAX_DIMS], ix[HY_MAX_DIMS];
  for (int64_t f = 0; f < hy_numel(x); f++) {
    t_unravel(f, y->ndim, y->shape, iy);
    t_unravel(f, x->ndim, x->shape, ix);
    cr_assert(t_at(y, iy) == t_at(x, ix), "%s: element %lld", what, (long long)f);
  }
}

static bool shares_memory(const hy_tensor *a, const hy_tensor *b) {
  const char *pa = a->data, *pb = b->data;
  size_t n = (size_t)hy_numel(b) * hy_dtype_size(b->dtype);
  return pa >= pb && pa < pb + n;
}

/* ---- reshape ---- */

Test(shape, reshape_values_and_minus_one) {
  for (int d = 0; d < 2; d++) {
    hy_tensor *x = t_randn_next(DTYPES[d], HY_SHAPE(2, 3, 35));
    hy_tensor *a = hy_reshape(x, HY_SHAPE(6, 35));
    hy_tensor *b = hy_reshape(x, HY_SHAPE(-1, 7));
    hy_tensor *c = hy_reshape(x, HY_SHAPE(3, -1, 5, 2));
    hy_tensor *e = hy_reshape(x, HY_SHAPE(-1));
    hy_tensor *f = hy_reshape(x, HY_SHAPE(1, 210, 1));
    cr_assert(shape_is(a, HY_SHAPE(6, 35)) && shape_is(b, HY_SHAPE(30, 7)));
    cr_assert(shape_is(c, HY_SHAPE(3, 7, 5, 2)) && shape_is(e, HY_SHAPE(210)));
    cr_assert(shape_is(f, HY_SHAPE(1, 210, 1)));
    hy_tensor *all[] = {a, b, c, e, f};
    for (int i = 0; i < 5; i++) {
      expect_same_sequence(all[i], x, "reshape");
      cr_assert(all[i]->data == x->data, "reshape of a contiguous tensor is a view");
      cr_assert(hy_is_contiguous(all[i]));
    }
  }
}

Test(shape, reshape_of_non_contiguous_copies) {
  for (int d = 0; d < 2; d++) {
    hy_tensor *x = t_randn_next(DTYPES[d], HY_SHAPE(5, 3, 7));
    hy_tensor *t = hy_transpose(x, 0, 2); /* [7, 3, 5] */
    hy_tensor *r = hy_reshape(t, HY_SHAPE(21, -1));
    cr_assert(shape_is(r, HY_SHAPE(21, 5)) && hy_is_contiguous(r));
    cr_assert(!shares_memory(r, x), "reshape of a transpose must copy");
    expect_same_sequence(r, t, "reshape of a transpose");
    hy_tensor *s = hy_slice(x, 1, 1, 3); /* [5, 2, 7] */
    hy_tensor *rs = hy_reshape(s, HY_SHAPE(-1));
    expect_same_sequence(rs, s, "reshape of a slice");
  }
}

/* ---- transpose ---- */

Test(shape, transpose_every_pair) {
  for (int d = 0; d < 2; d++) {
    hy_tensor *x = t_randn_next(DTYPES[d], HY_SHAPE(2, 3, 5, 7));
    for (int a = -4; a < 4; a++)
      for (int b = 0; b < 4; b++) {
        hy_tensor *t = hy_transpose(x, a, b);
        int aa = a < 0 ? a + 4 : a;
        cr_assert(t->data == x->data, "transpose is a view");
        cr_assert(t->shape[aa] == x->shape[b] && t->shape[b] == x->shape[aa]);
        int64_t it[4], ix[4];
        for (int64_t f = 0; f < hy_numel(t); f++) {
          t_unravel(f, 4, t->shape, it);
          for (int k = 0; k < 4; k++) ix[k] = it[k];
          ix[aa] = it[b];
          ix[b] = it[aa];
          cr_assert(t_at(t, it) == t_at(x, ix) && hy_get(t, f) == t_at(x, ix));
        }
      }
  }
}

/* ---- slice and split ---- */

Test(shape, slice_every_axis) {
  for (int d = 0; d < 2; d++) {
    hy_tensor *x = t_randn_next(DTYPES[d], HY_SHAPE(3, 5, 7, 2));
    for (int axis = 0; axis < 4; axis++) {
      int64_t n = x->shape[axis];
      for (int64_t start = 0; start <= n; start++)
        for (int64_t end = start; end <= n; end++) {
          hy_tensor *s = hy_slice(x, axis - (axis & 1) * 4, start, end); /* negative axes too */
          cr_assert(s->shape[axis] == end - start);
          if (end > start) cr_assert(shares_memory(s, x), "slice is a view");
          int64_t is[4];
          for (int64_t f = 0; f < hy_numel(s); f++) {
            t_unravel(f, 4, s->shape, is);
            double v = t_at(s, is);
            is[axis] += start;
            cr_assert(v == t_at(x, is), "slice axis %d [%lld, %lld)", axis, (long long)start,
                      (long long)end);
          }
        }
    }
    /* Slices of views: a slice of a transpose. */
    hy_tensor *st = hy_slice(hy_transpose(x, 0, 2), 0, 2, 6); /* [4, 5, 3, 2] */
    int64_t i[4];
    for (int64_t f = 0; f < hy_numel(st); f++) {
      t_unravel(f, 4, st->shape, i);
      int64_t j[4] = {i[2], i[1], i[0] + 2, i[3]};
      cr_assert(t_at(st, i) == t_at(x, j));
    }
  }
}

Test(shape, split_into_views) {
  for (int d = 0; d < 2; d++) {
    hy_tensor *x = t_randn_next(DTYPES[d], HY_SHAPE(3, 13, 5));
    hy_tensor *parts[4];
    const int64_t sizes[] = {1, 7, 0, 5};
    hy_split(x, 1, 4, sizes, parts);
    int64_t start = 0;
    for (int p = 0; p < 4; p++) {
      cr_assert(shape_is(parts[p], HY_SHAPE(3, sizes[p], 5)));
      expect_same_sequence(parts[p], hy_contiguous(hy_slice(x, 1, start, start + sizes[p])),
                           "split part");
      if (sizes[p]) cr_assert(shares_memory(parts[p], x), "split gives views");
      start += sizes[p];
    }
    hy_tensor *last[2];
    hy_split(x, -1, 2, (int64_t[]){2, 3}, last);
    int64_t i[3];
    for (int64_t f = 0; f < hy_numel(last[1]); f++) {
      t_unravel(f, 3, last[1]->shape, i);
      double v = t_at(last[1], i);
      i[2] += 2;
      cr_assert(v == t_at(x, i));
    }
  }
}

/* ---- concat ---- */

Test(shape, concat_every_axis) {
  for (int d = 0; d < 2; d++) {
    hy_dtype dt = DTYPES[d];
    for (int axis = 0; axis < 3; axis++) {
      hy_shape s1 = HY_SHAPE(2, 3, 5), s2 = s1, s3 = s1;
      s1.d[axis] = 1;
      s2.d[axis] = 4;
      s3.d[axis] = 3;
      /* The middle one a non-contiguous view of the same shape. */
      hy_shape s2t = s2;
      s2t.d[0] = s2.d[2];
      s2t.d[2] = s2.d[0];
      hy_tensor *xs[] = {t_randn_next(dt, s1), hy_transpose(t_randn_next(dt, s2t), 0, 2),
                         t_randn_next(dt, s3)};
      hy_tensor *y = hy_concat(3, xs, axis - 3 * (axis == 2)); /* -1 for the last */
      cr_assert(hy_is_contiguous(y) && y->shape[axis] == 8);
      int64_t i[3];
      for (int64_t f = 0; f < hy_numel(y); f++) {
        t_unravel(f, 3, y->shape, i);
        double v = t_at(y, i);
        int k = 0;
        while (i[axis] >= xs[k]->shape[axis]) i[axis] -= xs[k++]->shape[axis];
        cr_assert(v == t_at(xs[k], i), "concat axis %d element %lld", axis, (long long)f);
      }
    }
    hy_tensor *one = t_randn_next(dt, HY_SHAPE(4, 3));
    hy_tensor *c1 = hy_concat(1, &one, 0);
    cr_assert(c1->data != one->data, "concat copies");
    expect_same_sequence(c1, one, "concat of one");
  }
}

/* ---- contiguous and copy ---- */

Test(shape, contiguous_and_copy) {
  for (int d = 0; d < 2; d++) {
    hy_tensor *x = t_randn_next(DTYPES[d], HY_SHAPE(3, 5, 7));
    cr_assert(hy_contiguous(x) == x, "contiguous of a contiguous tensor is itself");
    hy_tensor *t = hy_transpose(x, 1, 2);
    hy_tensor *c = hy_contiguous(t);
    cr_assert(c != t && hy_is_contiguous(c) && !shares_memory(c, x));
    expect_same_sequence(c, t, "contiguous");
    hy_tensor *s = hy_slice(x, 0, 1, 2); /* [1, 5, 7]: contiguous although sliced */
    cr_assert(hy_contiguous(s) == s);
    hy_tensor *cp = hy_copy(x);
    cr_assert(cp != x && cp->data != x->data && hy_is_contiguous(cp));
    expect_same_sequence(cp, x, "copy");
    hy_tensor *ct = hy_copy(t);
    cr_assert(hy_is_contiguous(ct));
    expect_same_sequence(ct, t, "copy of a transpose");
    /* A copy is independent of its source. */
    hy_set(cp, 0, 42);
    cr_assert(hy_get(x, 0) != 42);
    /* Large (threaded copy loop). */
    hy_tensor *big = hy_transpose(t_randn_next(DTYPES[d], HY_SHAPE(130, 2, 129)), 0, 2);
    expect_same_sequence(hy_contiguous(big), big, "contiguous large");
    expect_same_sequence(hy_copy(big), big, "copy large");
  }
  /* i32 (indices) too. */
  hy_tensor *ids = t_ints(HY_SHAPE(2, 3), (int32_t[]){1, 2, 3, 4, 5, 6});
  expect_same_sequence(hy_contiguous(hy_transpose(ids, 0, 1)), hy_transpose(ids, 0, 1),
                       "contiguous i32");
}

/* ---- gradients ---- */

static hy_tensor *reshape_gc(hy_tensor **in, void *ctx) { /* [5, 3, 2] and [30] */
  (void)ctx;
  return hy_mul(hy_reshape(in[0], HY_SHAPE(-1, 3)), hy_reshape(in[1], HY_SHAPE(10, 3)));
}

static hy_tensor *reshape_view_gc(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_reshape(hy_transpose(in[0], 0, 1), HY_SHAPE(2, -1));
}

static hy_tensor *transpose_gc(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_mul(hy_transpose(in[0], 0, 2), in[1]);
}

static hy_tensor *slice_gc(hy_tensor **in, void *ctx) {
  (void)ctx;
  /* Two overlapping slices: their gradients add up in the overlap. */
  return hy_add(hy_slice(in[0], 1, 0, 4), hy_scale(hy_slice(in[0], 1, 2, 6), 3));
}

static hy_tensor *split_gc(hy_tensor **in, void *ctx) {
  (void)ctx;
  hy_tensor *p[3];
  hy_split(in[0], -1, 3, (int64_t[]){2, 3, 2}, p);
  return hy_concat(3, (hy_tensor *[]){hy_exp(p[2]), p[0], hy_scale(p[1], -2)}, -1);
}

static hy_tensor *concat_gc(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_concat(3, (hy_tensor *[]){in[0], hy_transpose(in[1], 0, 1), in[0]}, 0);
}

static hy_tensor *contiguous_gc(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_contiguous(hy_transpose(in[0], 0, 2));
}

static hy_tensor *copy_gc(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_mul(hy_copy(in[0]), hy_copy(hy_slice(in[0], 0, 0, 3)));
}

Test(shape, gradcheck) {
  hy_tensor *a = t_param(t_randn_next(HY_F64, HY_SHAPE(5, 3, 2))),
            *b = t_param(t_randn_next(HY_F64, HY_SHAPE(30)));
  t_expect_gradcheck(reshape_gc, NULL, 2, (hy_tensor *[]){a, b}, "reshape");
  t_expect_gradcheck(reshape_view_gc, NULL, 1, &a, "reshape of a transpose");
  hy_tensor *c = t_param(t_randn_next(HY_F64, HY_SHAPE(2, 3, 5)));
  t_expect_gradcheck(transpose_gc, NULL, 2,
                     (hy_tensor *[]){c, t_param(t_randn_next(HY_F64, HY_SHAPE(5, 3, 2)))},
                     "transpose");
  hy_tensor *e = t_param(t_randn_next(HY_F64, HY_SHAPE(3, 7)));
  t_expect_gradcheck(slice_gc, NULL, 1, &e, "overlapping slices");
  t_expect_gradcheck(split_gc, NULL, 1, &e, "split");
  hy_tensor *f = t_param(t_randn_next(HY_F64, HY_SHAPE(2, 3))),
            *g = t_param(t_randn_next(HY_F64, HY_SHAPE(3, 4)));
  t_expect_gradcheck(concat_gc, NULL, 2, (hy_tensor *[]){f, g}, "concat");
  t_expect_gradcheck(contiguous_gc, NULL, 1, &c, "contiguous");
  hy_tensor *h = t_param(t_randn_next(HY_F64, HY_SHAPE(3, 4)));
  t_expect_gradcheck(copy_gc, NULL, 1, &h, "copy");
}

Test(shape, deterministic) {
  hy_tensor *x = hy_transpose(t_randn_next(HY_F32, HY_SHAPE(130, 2, 129)), 0, 2);
  t_expect_same_bits(hy_contiguous(x), hy_copy(x), "contiguous and copy");
  t_expect_same_bits(hy_concat(2, (hy_tensor *[]){x, x}, 1), hy_concat(2, (hy_tensor *[]){x, x}, 1),
                     "concat");
}

/* ---- bad use ---- */

static void reshape_wrong_size(void) {
  hy_reshape(hy_zeros(HY_F32, HY_SHAPE(2, 3)), HY_SHAPE(4, 2));
}
static void reshape_two_free(void) {
  hy_reshape(hy_zeros(HY_F32, HY_SHAPE(2, 3)), HY_SHAPE(-1, -1));
}
static void reshape_no_fit(void) { hy_reshape(hy_zeros(HY_F32, HY_SHAPE(2, 3)), HY_SHAPE(-1, 4)); }
static void transpose_bad_axis(void) { hy_transpose(hy_zeros(HY_F32, HY_SHAPE(2, 3)), 0, 2); }
static void slice_past_end(void) { hy_slice(hy_zeros(HY_F32, HY_SHAPE(2, 3)), 1, 1, 4); }
static void slice_backwards(void) { hy_slice(hy_zeros(HY_F32, HY_SHAPE(2, 3)), 0, 2, 1); }
static void split_wrong_total(void) {
  hy_tensor *p[2];
  hy_split(hy_zeros(HY_F32, HY_SHAPE(2, 7)), 1, 2, (int64_t[]){3, 3}, p);
}
static void concat_mismatch(void) {
  hy_concat(2, (hy_tensor *[]){hy_zeros(HY_F32, HY_SHAPE(2, 3)), hy_zeros(HY_F32, HY_SHAPE(3, 3))},
            1);
}
static void concat_dtypes(void) {
  hy_concat(2, (hy_tensor *[]){hy_zeros(HY_F32, HY_SHAPE(2, 3)), hy_zeros(HY_F64, HY_SHAPE(2, 3))},
            0);
}

Test(shape, bad_use_aborts) {
  t_expect_abort(reshape_wrong_size, 3, (const char *[]){"reshape", "[2, 3]", "[4, 2]"});
  t_expect_abort(reshape_two_free, 2, (const char *[]){"reshape", "[2, 3]"});
  t_expect_abort(reshape_no_fit, 2, (const char *[]){"reshape", "[2, 3]"});
  t_expect_abort(transpose_bad_axis, 3, (const char *[]){"transpose", "axis 2", "[2, 3]"});
  t_expect_abort(slice_past_end, 3, (const char *[]){"slice", "[1, 4)", "[2, 3]"});
  t_expect_abort(slice_backwards, 3, (const char *[]){"slice", "[2, 1)", "[2, 3]"});
  t_expect_abort(split_wrong_total, 3, (const char *[]){"split", "6", "[2, 7]"});
  t_expect_abort(concat_mismatch, 3, (const char *[]){"concat", "[2, 3]", "[3, 3]"});
  t_expect_abort(concat_dtypes, 3, (const char *[]){"concat", "[2, 3] f32", "[2, 3] f64"});
}
